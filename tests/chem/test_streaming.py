"""`torchsci chem predict` streams a CSV in chunks: same output as one chunk, invalid rows kept with the reason."""

from __future__ import annotations

import csv

import pytest

from tests.badinput import assert_one_clear_line, run_cli
from torchsci_chem.inference import stream_csv

SMILES = ["CCO", "c1ccccc1O", "not_a_smiles", "CC(=O)O", "", "CCN", "C1CC1", "c1ccncc1"]


def _write(path, smiles):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "smiles"])
        writer.writerows([[f"m{k}", s] for k, s in enumerate(smiles)])


def test_chunked_predictions_equal_one_chunk_and_keep_invalid_rows(tmp_path, capsys):
    source = tmp_path / "library.csv"
    _write(source, SMILES)
    outs = {}
    for chunk in (3, 100):
        out = tmp_path / f"p{chunk}.csv"
        code, err = run_cli(["chem", "predict", source, "-o", out, "--on-invalid", "skip", "--chunk-size", chunk,
                             "--progress"], capsys)
        assert code == 0, err
        outs[chunk] = list(csv.DictReader(out.open()))
        assert "2 row(s) could not be read" in err and f"wrote {len(SMILES)} predictions" in err
    assert outs[3] == outs[100]
    rows = outs[3]
    assert [r["id"] for r in rows] == [f"m{k}" for k in range(len(SMILES))]  # every row, in order
    assert rows[2]["prediction"] == "" and rows[2]["invalid"] and rows[4]["invalid"]
    assert all(r["prediction"] and not r["invalid"] for k, r in enumerate(rows) if k not in (2, 4))


def test_invalid_rows_without_skip_are_one_line_naming_the_line(tmp_path, capsys):
    source = tmp_path / "library.csv"
    _write(source, SMILES)
    out = tmp_path / "p.csv"
    code, err = run_cli(["chem", "predict", source, "-o", out, "--chunk-size", "2"], capsys)
    assert_one_clear_line(code, err, "library.csv", "line 4", "not_a_smiles", "--on-invalid skip")
    assert not out.exists()


def test_stream_reads_lazily_in_chunks_with_line_numbers(tmp_path):
    source = tmp_path / "semi.csv"
    source.write_bytes("\ufeffsmiles;name\r\nCCO;a\r\n\r\nCCN;b\r\nCCC;c\r\n".encode())
    header, chunks = stream_csv(source, "smiles", chunk_size=2)
    assert header == ["smiles", "name"]
    parts = list(chunks)
    assert [[line for line, _ in p] for p in parts] == [[2, 4], [5]]
    assert parts[1][0][1] == {"smiles": "CCC", "name": "c"}
    with pytest.raises(Exception, match="no column 'smi'"):
        stream_csv(source, "smi")


def test_a_smiles_column_spelt_in_capitals_is_found_and_an_ambiguous_one_refused(tmp_path, capsys):
    source = tmp_path / "export.csv"
    source.write_text("ID,SMILES\nm0,CCO\nm1,c1ccccc1O\n")
    out = tmp_path / "p.csv"
    code, err = run_cli(["chem", "predict", source, "-o", out, "--model", "lipo"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert [r["SMILES"] for r in rows] == ["CCO", "c1ccccc1O"] and all(r["prediction"] for r in rows)
    assert [r["standardized_smiles"] for r in rows] == ["CCO", "Oc1ccccc1"]
    both = tmp_path / "both.csv"
    both.write_text("Smiles,SMILES\nCCO,CCN\n")
    code, err = run_cli(["chem", "predict", both, "-o", tmp_path / "q.csv"], capsys)
    assert_one_clear_line(code, err, "both.csv", "no column 'smiles'", "Smiles", "--smiles NAME")
    code, err = run_cli(["chem", "predict", both, "-o", tmp_path / "q.csv", "--smiles", "SMILES"], capsys)
    assert code == 0, err
    assert list(csv.DictReader((tmp_path / "q.csv").open()))[0]["standardized_smiles"] == "CCN"


def test_smiles_files_and_gzipped_inputs_are_read_as_chemists_keep_them(tmp_path, capsys):
    import gzip

    from rdkit import Chem

    smi = tmp_path / "zinc.smi"
    smi.write_text("smiles zinc_id\nCCO ZINC000001\n# a comment\n\nc1ccccc1O\tphenol, liquid\nC1CC bad ring\n")
    code, err = run_cli(["chem", "predict", smi, "-o", tmp_path / "smi.csv", "--on-invalid", "skip"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "smi.csv").open()))
    assert [(r["smiles"], r["name"]) for r in rows] == [("CCO", "ZINC000001"), ("c1ccccc1O", "phenol, liquid"),
                                                      ("C1CC", "bad ring")]
    assert rows[0]["prediction"] and rows[1]["prediction"] and rows[2]["invalid"] and not rows[2]["prediction"]
    code, err = run_cli(["chem", "predict", smi, "-o", tmp_path / "smi2.csv"], capsys)
    assert_one_clear_line(code, err, "zinc.smi", "line 6", "C1CC", "--on-invalid skip")

    table = tmp_path / "lib.csv.gz"
    with gzip.open(table, "wt") as fh:
        fh.write("SMILES,id\nCCO,a\nc1ccccc1O,b\n")
    code, err = run_cli(["chem", "predict", table, "-o", tmp_path / "gz.csv", "--progress"], capsys)
    assert code == 0, err
    gz_rows = list(csv.DictReader((tmp_path / "gz.csv").open()))
    assert [r["id"] for r in gz_rows] == ["a", "b"]
    assert [r["prediction"] for r in gz_rows] == [r["prediction"] for r in rows[:2]]

    sdf = tmp_path / "chembl.sdf.gz"
    with gzip.open(sdf, "wt") as fh:
        for title, s in [("ethanol", "CCO"), ("phenol", "c1ccccc1O")]:
            mol = Chem.MolFromSmiles(s)
            mol.SetProp("_Name", title)
            fh.write(Chem.MolToMolBlock(mol) + "$$$$\n")
    code, err = run_cli(["chem", "predict", sdf, "-o", tmp_path / "sdf.csv"], capsys)
    assert code == 0, err
    sdf_rows = list(csv.DictReader((tmp_path / "sdf.csv").open()))
    assert [r["title"] for r in sdf_rows] == ["ethanol", "phenol"]
    assert [r["prediction"] for r in sdf_rows] == [r["prediction"] for r in rows[:2]]

    broken = tmp_path / "cut.sdf.gz"
    broken.write_bytes(sdf.read_bytes()[:40])
    code, err = run_cli(["chem", "predict", broken, "-o", tmp_path / "x.csv"], capsys)
    assert_one_clear_line(code, err, "cut.sdf.gz", "not a readable gzip file")
    fake = tmp_path / "plain.smi.gz"
    fake.write_text("CCO\n")
    code, err = run_cli(["chem", "predict", fake, "-o", tmp_path / "x.csv"], capsys)
    assert_one_clear_line(code, err, "plain.smi.gz", "not a readable gzip file")
    empty = tmp_path / "empty.smi"
    empty.write_text("\n\n")
    code, err = run_cli(["chem", "predict", empty, "-o", tmp_path / "x.csv"], capsys)
    assert_one_clear_line(code, err, "empty.smi", "empty")
    assert not (tmp_path / "x.csv").exists()


def test_predict_file_in_python_writes_what_the_command_writes(tmp_path, capsys):
    import torchsci_chem
    from torchsci import ConfigError, DataError

    source = tmp_path / "library.csv"
    _write(source, SMILES)
    code, err = run_cli(["chem", "predict", source, "-o", tmp_path / "cli.csv", "--on-invalid", "skip",
                         "--interval", "0.9", "--chunk-size", "3"], capsys)
    assert code == 0, err
    out = torchsci_chem.predict_file(source, tmp_path / "py.csv", on_invalid="skip", interval=0.9, chunk_size=3)
    assert out == tmp_path / "py.csv" and out.read_bytes() == (tmp_path / "cli.csv").read_bytes()
    with pytest.raises(DataError, match=r"line 4 'not_a_smiles'.*on_invalid='skip'"):
        torchsci_chem.predict_file(source, tmp_path / "again.csv")
    assert not (tmp_path / "again.csv").exists()
    with pytest.raises(ConfigError, match="chunk_size=0"):
        torchsci_chem.predict_file(source, tmp_path / "again.csv", chunk_size=0)
    with pytest.raises(Exception, match="over|input"):  # never over its input
        torchsci_chem.predict_file(source, source)
    assert source.read_text().startswith("id,smiles")


@pytest.mark.parametrize("name", ["big.csv.gz", "big.smi.gz"])
def test_a_gzip_file_cut_part_way_is_one_clear_error_and_no_output(tmp_path, capsys, name):
    import gzip
    import random

    rng = random.Random(0)  # incompressible names, so the cut falls past the first 64 KiB that are checked up front
    lines = [f"C{'C' * (k % 5)}O {''.join(rng.choice('abcdefghij') for _ in range(40))}" for k in range(6000)]
    text = ("smiles name\n" + "\n".join(lines) + "\n").replace(" ", "," if name.endswith(".csv.gz") else " ")
    full = gzip.compress(text.encode())
    source = tmp_path / name
    source.write_bytes(full[: len(full) * 2 // 3])
    code, err = run_cli(["chem", "predict", source, "-o", tmp_path / "p.csv", "--chunk-size", "500"], capsys)
    assert_one_clear_line(code, err, name, "gzip stream is damaged part-way")
    assert not (tmp_path / "p.csv").exists()


def test_a_smiles_file_that_is_binary_or_not_utf8_is_one_clear_error(tmp_path, capsys):
    binary = tmp_path / "image.smi"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, err = run_cli(["chem", "predict", binary, "-o", tmp_path / "x.csv"], capsys)
    assert_one_clear_line(code, err, "image.smi", "binary file")
    latin = tmp_path / "latin.smi"
    latin.write_bytes("CCO ethanol\nc1ccccc1O ph\xe9nol\n".encode("latin-1"))
    code, err = run_cli(["chem", "predict", latin, "-o", tmp_path / "x.csv"], capsys)
    assert_one_clear_line(code, err, "latin.smi", "line 2", "not UTF-8", "0xe9")
    assert not (tmp_path / "x.csv").exists()
