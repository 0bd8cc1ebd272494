"""Shared pieces of the synthetic data generator: canonical columns, names, phones, ID numbers.

Everything here is vectorised: strings are built with ``numpy.strings`` and
fixed-width digit matrices, because the customer generator makes millions of
rows and a Python loop per row would dominate its run time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from grid.errors import InvalidInput

try:  # pandas 3 stores strings in Arrow when it is installed; building them there directly is ~5x faster
    import pyarrow as pa
except ImportError:  # pragma: no cover - the numpy path below gives the same values
    pa = None

# Canonical import fields per kind, in docs/fields.md order; the generator writes exactly these.
FIELDS: Mapping[str, tuple[str, ...]] = {
    "legal-entities": ("code", "name", "county_codes"),
    "villages": (
        "code",
        "name",
        "township_code",
        "township_name",
        "county_code",
        "households",
        "population",
        "lon",
        "lat",
        "coord_level",
        "is_community",
    ),
    "outlets": (
        "code",
        "name",
        "legal_entity",
        "county_code",
        "village_code",
        "kind",
        "lon",
        "lat",
    ),
    "service-points": (
        "code",
        "name",
        "legal_entity",
        "outlet_code",
        "county_code",
        "village_code",
        "lon",
        "lat",
    ),
    "rms": (
        "code",
        "name",
        "legal_entity",
        "outlet_code",
        "phone",
        "capacity",
        "hired_on",
        "active",
    ),
    "customers": (
        "customer_id",
        "name",
        "id_number",
        "phone",
        "legal_entity",
        "county_code",
        "village_code",
        "lon",
        "lat",
        "deposit_balance",
        "loan_balance",
        "segment",
        "opened_on",
    ),
    "visits": ("customer_id", "rm_code", "visited_at", "channel", "outcome", "lon", "lat"),
    "leads": ("lead_id", "customer_id", "lead_type", "status", "created_at", "due_on"),
    "tags": ("customer_id", "tag"),
}

# The default reference day (no wall clock in grid/): every generated date is a seeded offset before
# the ``as_of`` a function is given (the demo gives the day it runs), so one seed and one day give the
# same data, and another day gives the same data shifted.
AS_OF = np.datetime64("2025-06-30", "D")


def day_of(as_of) -> np.datetime64:
    """``as_of`` (a date, datetime, string or numpy datetime64) as a numpy day."""
    return np.datetime64(as_of, "D")

# Common surnames, with rough relative frequencies (Ningxia adds 马/杨/海 from its Hui population).
_SURNAMES = np.array(
    list(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤海"
    )
    + ["欧阳", "司马", "上官"]
)
_SURNAME_W = np.concatenate(
    [
        np.linspace(7.0, 0.3, len(_SURNAMES) - 4),
        [0.6],  # 海
        [0.05, 0.02, 0.02],
    ]
)
_SURNAME_W[list(_SURNAMES).index("马")] = 4.0  # common among the Hui in Ningxia
_GIVEN = np.array(
    list(
        "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国志红玉梅文斌宇浩凯鹏辉俊峰"
        "海燕雪琳晨欣怡佳子涵轩博瑞泽宁夏春秋云飞龙虎福贵兴旺德成立新东生金银山林"
    )
)
_TRADE = np.array(["兴农", "丰源", "宏达", "金穗", "塞上", "黄河", "贺兰", "六盘", "沙湖", "枸杞"])
_INDUSTRY = np.array(["农资", "商贸", "养殖", "种植", "建材", "物流", "餐饮", "农机"])


_KM_PER_DEG = 111.32


def jitter_km(rng, lon, lat, sigma_km):
    """Gaussian offsets of ``sigma_km`` per axis, added in degrees.

    Offsets of a few km: the local equirectangular scale is exact to well
    under 1 %, and this only places points (nothing is measured here).
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    sigma_km = np.broadcast_to(np.asarray(sigma_km, dtype=float), lon.shape)
    dx = rng.normal(0.0, 1.0, lon.shape) * sigma_km
    dy = rng.normal(0.0, 1.0, lon.shape) * sigma_km
    coslat = np.cos(np.radians(np.nan_to_num(lat, nan=0.0)))
    return lon + dx / (_KM_PER_DEG * coslat), lat + dy / _KM_PER_DEG


def county_codes(villages: pd.DataFrame) -> pd.Series:
    """County adcode of each village: its own column, else the first 6 digits of its code."""
    code = villages["code"].astype(str)
    if "county_code" in villages:
        cc = villages["county_code"].astype("string")
        return cc.fillna(code.str[:6]).astype(str)
    return code.str[:6]


def as_rng(rng) -> np.random.Generator:
    """A numpy Generator from a Generator or a seed."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


_STR = pd.Series(["a"], dtype="str").dtype
_ARROW_STR = pa is not None and getattr(_STR, "storage", None) == "pyarrow"


def str_series(values) -> pd.Series:
    """A pandas string Series from a numpy str, ASCII-bytes or object array (None -> NaN)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        if _ARROW_STR:
            fixed = pa.array(arr, type=pa.binary(arr.dtype.itemsize)).cast(pa.string())
            return pd.Series(fixed, dtype=_STR)
        arr = arr.astype(f"U{arr.dtype.itemsize}")
    return pd.Series(arr, dtype="str")


# Four ASCII digits for every number below 10,000, each packed in one uint32: one gather per four digits.
_QUAD = (
    np.array([list(f"{i:04d}".encode()) for i in range(10_000)], dtype=np.uint8)
    .view(np.uint32)
    .ravel()
)


def digits(values, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ints as a ``(n, width)`` uint8 ASCII matrix."""
    x = np.asarray(values, dtype=np.int64).ravel().copy()
    groups = -(-width // 4)
    out = np.empty((x.size, groups), dtype=np.uint32)
    for g in range(groups - 1, -1, -1):
        out[:, g] = _QUAD[x % 10_000]
        x //= 10_000
    return out.view(np.uint8)[:, groups * 4 - width :]


def padded(prefix: str, values, width: int) -> np.ndarray:
    """ASCII bytes ``prefix`` + zero-padded ints: ``padded('C', [7], 10) -> [b'C0000000007']``."""
    pre = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    body = digits(values, width)
    mat = np.empty((body.shape[0], pre.size + width), dtype=np.uint8)
    mat[:, : pre.size] = pre
    mat[:, pre.size :] = body
    return mat.view(f"S{mat.shape[1]}").ravel()


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chinese personal names: a weighted surname and one or two given-name characters."""
    p = _SURNAME_W / _SURNAME_W.sum()
    sur = _SURNAMES[rng.choice(_SURNAMES.size, n, p=p)]
    g1 = _GIVEN[rng.integers(0, _GIVEN.size, n)]
    g2 = _GIVEN[rng.integers(0, _GIVEN.size, n)]
    # Roughly two in three modern names have two given-name characters.
    given = np.where(rng.random(n) < 0.65, np.strings.add(g1, g2), g1)
    return np.strings.add(sur, given)


def company_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Small-business names such as ``'宁夏兴农农资有限公司'``."""
    trade = _TRADE[rng.integers(0, _TRADE.size, n)]
    ind = _INDUSTRY[rng.integers(0, _INDUSTRY.size, n)]
    return np.strings.add(np.strings.add(np.strings.add("宁夏", trade), ind), "有限公司")


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mainland mobile numbers ``1[3-9]`` followed by nine digits, as ASCII bytes."""
    second = rng.integers(3, 10, n)
    rest = rng.integers(0, 10**9, n)
    return padded("1", second * 10**9 + rest, 10)


_ID_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a resident ID number's first 17 digits.

    Examples
    --------
    >>> id_check_char("11010519491231002")
    'X'
    """
    s = sum(int(c) * int(w) for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[s % 11]


def id_numbers(rng: np.random.Generator, county_codes, birth_dates) -> np.ndarray:
    """18-character resident ID numbers: region, birth date, sequence and check character.

    ``county_codes`` are 6-digit ints or strings (the region prefix), ``birth_dates``
    datetime64 values.  Returns ASCII bytes (see :func:`str_series`).
    """
    region = np.asarray(county_codes).astype(np.int64)
    births = np.asarray(birth_dates, dtype="datetime64[D]")
    years = births.astype("datetime64[Y]").astype(np.int64) + 1970
    months = births.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (births - births.astype("datetime64[M]")).astype(np.int64) + 1
    seq = rng.integers(0, 1000, region.size)
    first17 = region * 10**11 + (years * 10000 + months * 100 + days) * 1000 + seq
    mat = np.empty((region.size, 18), dtype=np.uint8)
    mat[:, :17] = digits(first17, 17)
    total = (mat[:, :17].astype(np.int64) - 48) @ _ID_WEIGHTS
    mat[:, 17] = _ID_CHECK[total % 11]
    return mat.view("S18").ravel()


def truthy(values) -> np.ndarray:
    """Boolean array from bools or the usual spreadsheet spellings (Y/是/1/true)."""
    s = pd.Series(values)
    if s.dtype == bool:
        return s.to_numpy()
    text = s.astype("string").str.strip().str.lower()
    return text.isin(["y", "yes", "true", "1", "是", "t"]).fillna(False).to_numpy(dtype=bool)


def frame(kind: str, columns: Mapping[str, object]) -> pd.DataFrame:
    """A DataFrame with exactly the canonical columns of ``kind``, in canonical order."""
    missing = set(FIELDS[kind]) - set(columns)
    extra = set(columns) - set(FIELDS[kind])
    if missing or extra:
        raise InvalidInput(f"{kind}: missing {sorted(missing)}, extra {sorted(extra)}")
    return pd.DataFrame({c: columns[c] for c in FIELDS[kind]})
