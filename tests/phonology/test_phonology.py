"""Phonology: ASPF, family distance, feature tables, phone mapping, IPA normalisation (hand-computed cases)."""

import math

import numpy as np
import pytest

from jaxcompress.errors import UserError
from jaxcompress.phonology import aspf as aspf_lib
from jaxcompress.phonology import features, inventory, languages, mapping


def test_aspf_hand_computed_and_properties():
    a = {"x": 3, "y": 4}
    assert aspf_lib.aspf(a, a) == pytest.approx(1.0)
    assert aspf_lib.aspf(a, {"x": 30, "y": 40}) == pytest.approx(1.0)  # scale invariant
    assert aspf_lib.aspf({"x": 1}, {"y": 5}) == pytest.approx(0.0)  # disjoint inventories
    # f_a = (1, 0), f_b = (1/2, 1/2): cos = 1/sqrt(2), arccos = pi/4, ASPF = 1 - 2 (pi/4) / pi = 0.5.
    assert aspf_lib.aspf({"x": 1}, {"x": 1, "y": 1}) == pytest.approx(0.5)
    b = {"x": 1, "z": 2, "w": 7}
    assert aspf_lib.aspf(a, b) == pytest.approx(aspf_lib.aspf(b, a))
    # (3, 4, 0, 0) . (1, 0, 2, 7) over the union (w, x, y, z) -> cos = 3 / (5 sqrt(54)).
    expected = 1 - 2 * math.acos(3 / (5 * math.sqrt(54))) / math.pi
    assert aspf_lib.aspf(a, b) == pytest.approx(expected)


def test_aspf_counts_phones_only_one_side_has():
    # The reference code drops the first occurrence of a phone missing from its global list;
    # with the union list a phone of b alone still counts in full.
    phones, fa, fb = aspf_lib.frequency_vectors({"x": 2}, {"x": 1, "q": 1})
    assert phones == ["q", "x"]
    np.testing.assert_allclose(fb, [0.5, 0.5])
    np.testing.assert_allclose(fa, [0.0, 1.0])


def test_aspf_empty_raises_unless_flagged():
    with pytest.raises(UserError, match="empty"):
        aspf_lib.aspf({}, {"x": 1})
    assert aspf_lib.aspf({}, {"x": 1}, empty_is_zero=True) == 0.0


def test_family_distance_hand_computed():
    # en: IE > Germanic > West Germanic > Anglic > English (5); bg: IE > Balto-Slavic > Slavic > South
    # Slavic > Eastern South Slavic > Bulgarian (6); they share only Indo-European: 5 + 6 - 2 = 9.
    assert languages.family_distance("en", "bg") == 9
    assert languages.family_distance("ru", "bg") == 5 + 6 - 2 * 3
    assert languages.family_distance("hi", "ur") == 2  # sisters under Hindustani
    assert languages.family_distance("ja", "sw") == 3 + 7  # different families meet at the root
    assert languages.family_distance("fi", "fi") == 0
    assert languages.same_family("kk", "uz") and not languages.same_family("fi", "uz")


def test_unknown_language_lists_the_available_ones():
    with pytest.raises(UserError, match=r"'xx' is not available; allowed: en \(English\).*uz \(Uzbek\)"):
        languages.get_language("xx")
    assert len(languages.SOURCES) == 5 and len(languages.TARGETS) == 6


def test_normalise_phones():
    assert inventory.normalise_phones(["p", "", "r", "ʲ", "ˈi", "ˌaː"]) == ["p", "rʲ", "i", "aː"]
    assert inventory.split_ipa("z_d_r_ˈa_v_e_j s_vʲ_ˈa_t") == ["z", "d", "r", "a", "v", "e", "j", "s", "vʲ", "a", "t"]


def test_context_counts():
    previous, following = inventory.context_counts([["a", "b", "a"]])
    assert previous["a"] == {"sil": 1, "b": 1} and following["a"] == {"b": 1, "sil": 1}
    assert previous["b"] == {"a": 1} and following["b"] == {"a": 1}


def test_panphon_vectors():
    table = features.PanPhonTable()
    assert len(table.names) == 24
    m = table.vector("m")
    assert m.shape == (25,)
    names = table.names
    assert m[names.index("nas")] == 1 and m[names.index("lab")] == 1 and m[names.index("syl")] == 0
    assert m[-1] == 0
    sil = table.vector(inventory.SILENCE)
    assert sil[-1] == 1 and sil[:-1].sum() == 0
    # An affricate written without a tie bar reads as one segment (delayed release +).
    assert table.values("dʒ")[names.index("delrel")] == "+"
    assert table.values("dʒ") == table.values("d͡ʒ")
    with pytest.raises(UserError, match="not described"):
        table.values("1")


def _phoible(tmp_path, rows):
    header = "segment\t" + "\t".join(features.PHOIBLE_FEATURES)
    lines = [header]
    for segment, plus in rows.items():
        lines.append(segment + "\t" + "\t".join("+" if f in plus else "-" for f in features.PHOIBLE_FEATURES))
    path = tmp_path / "phoible.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return features.PhoibleTable(path)


def test_phoible_table_and_mapping(tmp_path):
    table = _phoible(tmp_path, {"p": {"labial", "consonantal"}, "b": {"labial", "consonantal", "periodicGlottalSource"},
                                "t": {"coronal", "consonantal"}, "d": {"coronal", "consonantal",
                                                                      "periodicGlottalSource"},
                                "m": {"labial", "consonantal", "nasal", "periodicGlottalSource", "sonorant"},
                                "a": {"syllabic", "low"}, "o": {"syllabic", "round", "back"},
                                "u": {"syllabic", "round", "back", "high"}, "ɒ": {"syllabic", "round", "back", "low"}})
    assert table.vector("m").shape == (38,)
    assert table.values("mʲ") == table.values("m")  # a trailing modifier falls back to the base
    source = {"p": 5, "b": 1, "t": 3, "u": 2, "ɒ": 2, "a": 9}
    # d differs from b in 2 features (labial, coronal) and from t in 1 -> t; m is closest to b (2 diffs).
    result = mapping.map_phones(["p", "d", "m"], source, table)
    assert result == {"p": "p", "d": "t", "m": "b"}
    # o ties u and ɒ (one feature each); without context the more frequent wins, then sorted order.
    assert mapping.map_phones(["o"], {"u": 2, "ɒ": 2}, table) == {"o": "u"}
    assert mapping.map_phones(["o"], {"u": 1, "ɒ": 2}, table) == {"o": "ɒ"}
    # With context: o follows p like u does in the source -> u despite ɒ being more frequent.
    target_ctx = inventory.context_counts([["p", "o"]])
    source_ctx = inventory.context_counts([["p", "u"], ["a", "ɒ"], ["a", "ɒ"]])
    assert mapping.map_phones(["o"], {"u": 1, "ɒ": 2, "p": 1, "a": 2}, table, target_ctx, source_ctx) == {"o": "u"}
    with pytest.raises(UserError, match="empty source"):
        mapping.map_phones(["o"], {}, table)


def test_phoible_missing_file_or_columns(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        features.feature_table("phoible", str(tmp_path / "none.tsv"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("segment\ttone\np\t-\n")
    with pytest.raises(UserError, match="lacks the column"):
        features.PhoibleTable(bad)


def test_ternary_mode_scores():
    assert mapping.feature_score(("+", "-", "0"), ("+", "0", "-"), "ternary") == -2.0
    assert mapping.feature_score(("+", "-", "0"), ("+", "0", "-"), "match") == 1.0
    with pytest.raises(UserError, match="mapping mode"):
        mapping.feature_score(("+",), ("+",), "cosine")


def test_espeak_inventory_of_real_words():
    pytest.importorskip("espeakng_loader")
    assert inventory.transcribe(["здравей"], "bg") == [["z", "d", "r", "a", "v", "e", "j"]]
    words = inventory.cldr_words("ka")
    assert len(words) > 500 and all("\u10d0" <= ch <= "\u10ff" for ch in words[0])
    kana = inventory.cldr_words("ja")
    assert all("\u3040" <= ch <= "\u30ff" for w in kana for ch in w)
