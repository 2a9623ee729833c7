# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for formats/fsverity.py.

Expected digests come from spec section 7.4 (``composefs-repo.md``) or from the oracle
``fsverity digest --hash-alg=... --block-size=4096 FILE`` (Debian fsverity-utils).
"""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity



def pattern(size):
    """``size`` bytes with byte i = i % 251 (the spec's patN input)."""
    period = bytes(range(251))
    return (period * (size // 251 + 1))[:size]


# spec section 7.4: (id, input, sha256 fs-verity digest, sha512 fs-verity digest)
SPEC_VECTORS = [
    ("empty", lambda: b"",
     "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
     "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d1"
     "0adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"),
    ("hello", lambda: b"hello world",
     "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64",
     "18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba5"
     "14e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409"),
    ("zero1", lambda: b"\0",
     "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551",
     "9fcf5172b085b1c8f9365eecb37a1869e193a4705654a5829f11939cd01d5c0f"
     "d97276be8cd9d49f76cfc8dcfeb80f8128e3548a1de50b56912b9e3fc7bde27b"),
    ("pat4096", lambda: pattern(4096),
     "13e9b8848ae484a36acb3f3cac0ceb2f7601e96633d15c92f9bd3dd44e492157",
     "7bf994782b368ecc4e20ce9144701b1a30524d5bbc90987625de22eebc8cf370"
     "ec846c1b5e77f9099c6f6cfc0b590359b9ac8083a43e5f7fa5ec05a25dab6e03"),
    ("pat4097", lambda: pattern(4097),
     "b0d074abef4d544404facfab6ba242f6a8ccbde90f1325cd286f3c8aa8d0f8aa",
     "97a1e45daaa69bd7b31908cf835318ba36476984ffa7f4a5913c0187db04ce5f"
     "19dc80306f493741d4ad1cdd212b7a9d2691aa3d42563d35471363fbb0fc7f1c"),
    ("pat262145", lambda: pattern(262145),
     "3a184208d2025273795779ebbea5a31c8edecdb33646aaad46c66d089f8b9eed",
     "db774f463acc1e672e4da91d045eb146f2647efec545951fb7005067ff9899da"
     "3ae94dc206531b40985587ce4e5eb173a235d51b488074067d9e34131814b9de"),
    ("pat524289", lambda: pattern(524289),
     "4dc6905041c9c4ee73e13b53f63f5d289c46da359b664a965ead7f8cc4d799d4",
     "60b58fe0f1e5198627ffb6be091eef60edce9b4ff6ee43884ba78a831ecdecc1"
     "572729afc5ebeb09101e3f102c9d7142ab4f66216198d85f8c7194eca7885bb2"),
    ("pat67108865", lambda: pattern(67108865),
     "acba6554fbff4e8b2fc0361086b9e8ed6afbbd3196ade159c0f3e2bf9ecb2ed1",
     "8fedd4f06e533c604401fab2dd3cb54567ad80704a80aa78f32f023ce51bb46c"
     "297a2e8e3f3e65b35d69c06e37855309dec7ffbd63e2fdb6342e51b86024599b"),
]

# spec section 7.4: plain sha256 of some inputs, to check the pattern generator
SPEC_INPUT_SHA256 = [
    (4097, "a16560d668b843fb3be99ace41dbd18471f342bd3255a1d21204b35e43f74436"),
    (524289, "5584f83643017fcea9b7d65d3d3f890b5219eb1abfcb8896a2d4ef554d4612ec"),
    (67108865, "113352d294fcac5a297615d7125b46d2c6bfd15e44bf39558f5bb2ad092a2b28"),
]

ALGORITHM_IDS = ["sha256", "sha512"]


@pytest.mark.parametrize("size, expected", SPEC_INPUT_SHA256, ids=["pat%d" % s for s, _ in SPEC_INPUT_SHA256])
def test_pattern_generator_matches_spec(size, expected):
    assert hashlib.sha256(pattern(size)).hexdigest() == expected


@pytest.mark.parametrize("name, make, sha256, sha512", SPEC_VECTORS, ids=[v[0] for v in SPEC_VECTORS])
@pytest.mark.parametrize("algorithm", [fsverity.SHA256, fsverity.SHA512], ids=ALGORITHM_IDS)
def test_spec_vectors_digest_bytes(name, make, sha256, sha512, algorithm):
    expected = sha256 if algorithm is fsverity.SHA256 else sha512
    assert fsverity.digest_bytes(make(), algorithm).hex() == expected, name


@pytest.mark.parametrize("name", ["md5", "SHA256", "sha-256", ""])
def test_unknown_algorithm_name(name):
    with pytest.raises(FormatError):
        fsverity.algorithm_by_name(name)


def test_algorithm_lookup():
    assert fsverity.algorithm_by_name("sha256") == fsverity.SHA256
    assert fsverity.algorithm_by_name("sha512") == fsverity.SHA512
    assert fsverity.algorithm_by_kernel_id(1) == fsverity.SHA256
    assert fsverity.algorithm_by_kernel_id(2) == fsverity.SHA512
    with pytest.raises(FormatError):
        fsverity.algorithm_by_kernel_id(3)
