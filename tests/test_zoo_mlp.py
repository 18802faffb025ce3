"""Model zoo: `fastgrad train mlp` (universal approximation) learns within seconds."""
import json

import fastgrad.cli


def test_train_mlp_fits_sin(tmp_path):
    rc = fastgrad.cli.main(["train", "mlp", "--out", str(tmp_path), "--steps", "800", "--hidden", "32",
                            "--points", "128", "--functions", "sin"])
    assert rc == 0
    summary = json.loads((tmp_path / "mlp_summary.json").read_text())
    err = summary["functions"]["sin"]["max_abs_error"]
    # a constant predictor is off by 1 somewhere; the default run reaches ~0.006
    assert err < 0.05, err
    assert summary["seconds"] > 0
    header = (tmp_path / "mlp_loss.csv").read_text().splitlines()[0]
    assert header == "step,sin"
    assert (tmp_path / "mlp_fit.png").exists() and (tmp_path / "mlp_loss.png").exists()
