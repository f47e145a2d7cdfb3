"""Weights in and out of other libraries' checkpoint layouts (offline only)."""

from jaxcompress.convert.hf import (
    config_from_hf,
    config_to_hf,
    export_hf_state,
    graft,
    import_hf_state,
    load_hf_checkpoint,
    read_state,
    save_hf_checkpoint,
)

__all__ = ["config_from_hf", "config_to_hf", "export_hf_state", "graft", "import_hf_state",
           "load_hf_checkpoint", "read_state", "save_hf_checkpoint"]
