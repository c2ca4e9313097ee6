"""Bad inputs to ``torchsci chem``: one clear line each, inputs unchanged; and answers that used to be silent nonsense.

The corpus is written in the test: CSVs as spreadsheets and other programs write them, SDF files by RDKit,
and a checkpoint of another field by the core Trainer.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

import torchsci
import torchsci_chem
from tests.badinput import assert_one_clear_line, checksums, run_cli
from torchsci.applicability import COLUMNS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chem_corpus")
    (root / "good.csv").write_text("smiles,name\nCCO,ethanol\nc1ccccc1O,phenol\n")
    (root / "header_only.csv").write_text("smiles,name\n")
    (root / "latin1.csv").write_bytes("smiles,name\nCCO,éthanol\n".encode("latin-1"))
    (root / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (root / "empty.csv").write_bytes(b"")
    (root / "no_smiles_column.csv").write_text("molecule,name\nCCO,ethanol\n")
    (root / "empty.sdf").write_bytes(b"")
    writer = Chem.SDWriter(str(root / "two.sdf"))
    for smi in ("CCO", "c1ccccc1O"):
        writer.write(Chem.MolFromSmiles(smi))
    writer.close()
    mols = ["CCO", "CCCO", "CCCCO", "c1ccccc1", "CC", "CCN", "CCCN", "c1ccccc1O", "CC(=O)O", "CCOC", "CCCl", "OCCO"]
    (root / "three_labels.csv").write_text("smiles,active\n" + "".join(f"{m},{k % 3}\n" for k, m in enumerate(mols)))
    (root / "word_labels.csv").write_text("smiles,active\n" + "".join(
        f"{m},{'yes' if k == 4 else k % 2}\n" for k, m in enumerate(mols)))
    (root / "tiny_train.csv").write_text("smiles,logS\nCCO,1.1\nCCCO,0.6\nCCCCO,0.0\nc1ccccc1,-1.6\nCC,-1.4\n")
    data = torch.utils.data.TensorDataset(torch.randn(16, 5), torch.randn(16, 1))
    run = torchsci.Trainer(max_epochs=1, batch_size=8, run_dir=root / "core_run", verbose=False, tensorboard=False
                           ).fit(torchsci.create_model("core/mlp"), torchsci.RegressionTask(), data)
    os.replace(run.last_checkpoint, root / "core_mlp.ckpt")
    return root


CASES = {
    # name: (arguments with {root} for the corpus folder, words the one error line must hold)
    "header_only_csv": (["predict", "{root}/header_only.csv", "-o", "{out}"], ["header_only.csv", "only a header"]),
    "latin1_csv": (["predict", "{root}/latin1.csv", "-o", "{out}"], ["latin1.csv", "line 2", "not UTF-8"]),
    "binary_file": (["predict", "{root}/binary.csv", "-o", "{out}"], ["binary.csv", "binary file"]),
    "empty_csv": (["predict", "{root}/empty.csv", "-o", "{out}"], ["empty.csv", "empty"]),
    "no_smiles_column": (["predict", "{root}/no_smiles_column.csv", "-o", "{out}"], ["no_smiles_column.csv", "smiles"]),
    "empty_sdf": (["predict", "{root}/empty.sdf", "-o", "{out}"], ["empty.sdf", "empty"]),
    "output_is_the_input": (["predict", "{root}/good.csv", "-o", "{root}/good.csv"], ["good.csv", "also an input"]),
    "output_is_the_input_sdf": (["predict", "{root}/two.sdf", "-o", "{root}/two.sdf"], ["two.sdf", "also an input"]),
    "output_not_csv": (["predict", "{root}/good.csv", "-o", "{root}/predictions.xlsx"], ["predictions.xlsx", ".csv"]),
    "output_is_a_folder": (["predict", "{root}/good.csv", "-o", "{root}"], ["is a folder"]),
    "checkpoint_of_another_field": (["predict", "--model", "{root}/core_mlp.ckpt", "{root}/good.csv", "-o", "{out}"],
                                    ["core_mlp.ckpt", "core/mlp", "chem model"]),
    "train_set_too_small_for_validation": (["train", "{root}/tiny_train.csv", "--target", "logS", "-o", "{out}_run",
                                            "--epochs", "1"], ["tiny_train.csv", "too few", "val 0"]),
    "binary_labels_with_three_values": (["train", "{root}/three_labels.csv", "--target", "active", "--task",
                                         "classification", "-o", "{out}_run", "--epochs", "1"],
                                        ["three_labels.csv", "'active'", "0 or 1", "3 values", "--task multiclass"]),
    "non_numeric_label": (["train", "{root}/word_labels.csv", "--target", "active", "--task", "classification",
                           "-o", "{out}_run", "--epochs", "1"], ["word_labels.csv", "line 6", "'active'", "'yes'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(case, corpus, tmp_path, capsys):
    args, needles = CASES[case]
    args = [a.format(root=corpus, out=tmp_path / "out.csv") for a in args]
    before = checksums([corpus])
    code, err = run_cli(["chem", *args], capsys)
    assert_one_clear_line(code, err, *needles)
    assert checksums([corpus]) == before
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "out.csv_run" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------ no silent nonsense
def _predict_cli(source: Path, out: Path, capsys) -> tuple[list[dict[str, str]], str]:
    code, err = run_cli(["chem", "predict", str(source), "-o", str(out)], capsys)
    assert code == 0, err
    with open(out, newline="") as fh:
        return list(csv.DictReader(fh)), err


def test_excel_csv_with_bom_and_semicolons_reads_like_a_plain_one(corpus, tmp_path, capsys):
    excel = tmp_path / "excel.csv"
    excel.write_bytes("\ufeffsmiles;name\r\nCCO;ethanol\r\nc1ccccc1O;phenol\r\n".encode())
    plain, _ = _predict_cli(corpus / "good.csv", tmp_path / "plain_out.csv", capsys)
    rows, _ = _predict_cli(excel, tmp_path / "excel_out.csv", capsys)
    assert [r["smiles"] for r in rows] == ["CCO", "c1ccccc1O"]
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in plain] != ["", ""]


def test_a_bare_string_is_one_molecule():
    one = torchsci_chem.predict("CCO")
    assert one.shape == (1,)
    assert one[0] == pytest.approx(torchsci_chem.predict(["CCO"])[0])


def test_salts_metals_radicals_are_flagged_in_python_csv_and_the_warning(tmp_path, capsys):
    smiles = ["CCO", "[Na+].[Cl-]", "C[Hg]C", "[CH3]", "C[N+](C)(C)C"]
    mean, flags = torchsci_chem.predict(smiles, return_applicability=True)
    assert [f.applicable for f in flags] == [True, False, False, False, False]
    assert "salt" in flags[1].reason and "Hg" in flags[2].reason and "radical" in flags[3].reason
    assert "ion" in flags[4].reason and all(f.basis for f in flags) and np.isfinite(mean).all()
    with pytest.warns(UserWarning, match="cannot judge 4 of 5"):
        torchsci_chem.predict(smiles)
    source = tmp_path / "mols.csv"
    source.write_text("smiles\n" + "\n".join(smiles) + "\n")
    rows, err = _predict_cli(source, tmp_path / "out.csv", capsys)
    assert set(COLUMNS) <= set(rows[0])
    assert [r["applicable"] for r in rows] == ["yes", "no", "no", "no", "no"]
    assert rows[0]["applicability_reason"] == "" and "radical" in rows[3]["applicability_reason"]
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "mols.csv" in warning and "4 of 5" in warning and "based on" in warning


def test_sdf_predictions_carry_the_flag_too(corpus, tmp_path, capsys):
    rows, err = _predict_cli(corpus / "two.sdf", tmp_path / "out.csv", capsys)
    assert [r["applicable"] for r in rows] == ["yes", "yes"] and "warning:" not in err


def test_an_inchi_in_the_smiles_column_is_named_with_the_conversion(tmp_path, capsys):
    source = tmp_path / "mixed.csv"
    source.write_text("smiles\nCCO\nInChI=1S/CH4/h1H4\n")
    code, err = run_cli(["chem", "predict", source, "-o", tmp_path / "p.csv"], capsys)
    assert_one_clear_line(code, err, "mixed.csv", "line 3", "an InChI, not a SMILES", "MolFromInchi",
                          "--on-invalid skip")
    with pytest.warns(UserWarning, match=r"row 1: ' InChI=1S/CH4/h1H4': an InChI, not a SMILES"):
        out = torchsci_chem.predict(["CCO", " InChI=1S/CH4/h1H4"], on_invalid="skip")
    assert np.isfinite(out[0]) and np.isnan(out[1])
