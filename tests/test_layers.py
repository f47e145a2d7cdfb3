"""The package's import structure: no import runs back up the declared layer order, and no cycles."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("import_layers", REPO / "tools" / "import_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_runs_up_the_layers_and_no_cycles():
    tool = _tool()
    graph = tool.build_graph(REPO / "jaxcompress")
    assert tool.back_imports(graph) == []
    assert tool.strongly_connected(graph) == []
    rooms = tool.room_graph(graph)
    declared = {name for names in tool.LAYERS for name in names}
    assert set(rooms) <= declared, f"undeclared rooms: {sorted(set(rooms) - declared)}"


def test_the_checker_finds_a_back_import_and_a_cycle(tmp_path):
    package = tmp_path / "jaxcompress"
    (package / "nn").mkdir(parents=True)
    (package / "train").mkdir()
    (package / "__init__.py").write_text("")
    (package / "nn" / "__init__.py").write_text("")
    (package / "train" / "__init__.py").write_text("")
    (package / "nn" / "model.py").write_text("from jaxcompress.train import loop\n")
    (package / "train" / "loop.py").write_text("from jaxcompress.nn import model\n")
    tool = _tool()
    graph = tool.build_graph(package)
    assert ("jaxcompress.nn.model", "jaxcompress.train.loop") in tool.back_imports(graph)
    assert tool.strongly_connected(graph) == [["jaxcompress.nn.model", "jaxcompress.train.loop"]]
