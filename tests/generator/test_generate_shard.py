"""`claim generate --shard i/n`: a shard writes exactly the unsharded run's files for its entries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from claim.cli import main
from claim.data.io import read_nifti
from claim.errors import ClaimError
from claim.stages.generate import generate_scars, parse_shard
from tests.generator.conftest import make_masks_dir


def _strip(entries):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in entries]


def test_shards_reproduce_the_unsharded_run(phantom_dir, tiny_checkpoint, tmp_path):
    masks_dir, _ = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=3)
    full = generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "full", sampler="ddim:2", seed=4,
                          previews=False)
    shared = tmp_path / "shards"
    for i in (0, 1):
        args = ["generate", "--model", str(tiny_checkpoint), "--data", str(phantom_dir), "--masks", str(masks_dir),
                "--out", str(shared), "--sampler", "ddim:2", "--seed", "4", "--shard", f"{i}/2"]
        assert main(args) == 0
    shard0 = json.loads((shared / "generation_shard0of2.json").read_text())
    shard1 = json.loads((shared / "generation_shard1of2.json").read_text())
    assert not (shared / "generation.json").exists()
    ids = [e["mask_id"] for e in full.entries]
    assert {e["mask_id"] for e in shard0} == {ids[0], ids[2]} and {e["mask_id"] for e in shard1} == {ids[1]}
    assert sorted(_strip(shard0 + shard1), key=json.dumps) == sorted(_strip(full.entries), key=json.dumps)
    for e in full.entries:
        np.testing.assert_array_equal(read_nifti(shared / e["image"]).data,
                                      read_nifti(tmp_path / "full" / e["image"]).data)
    with pytest.raises(ClaimError, match="layout only"):
        generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "nn", output_format="nnunet", shard=(0, 2))


@pytest.mark.parametrize("text", ["2/2", "-1/3", "1", "a/b", "0/0"])
def test_bad_shard_values_are_rejected(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)
    assert parse_shard("1/3") == (1, 3)
