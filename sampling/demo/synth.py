"""A synthetic district, deterministic from a seed: streets, communities, grids,
buildings, households and residents, with the labels and colours of the field.

Shared by the demo, the load test and the benchmarks, so all of them sample the
same kind of population.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sampling import codes

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国建"
    "华志强春梅海燕文杰子涵浩然梓轩欣怡雨涵思远一鸣晓东"
)
STREETS = (
    "花园路街道",
    "经八路街道",
    "人民路街道",
    "杜岭街道",
    "大石桥街道",
    "南阳路街道",
    "丰产路街道",
    "东风路街道",
)
LABELS = (
    "permanent",
    "vacant",
    "home isolation",
    "home observation",
    "assistance recipient",
    "disabled",
    "party-member family",
    "elderly living alone",
)


@dataclass
class Resident:
    code: str
    name: str
    phone: str
    street: str
    community: str
    grid: str
    building: str
    unit: str
    household: str
    labels: list[str]
    colour: str
    away: bool

    @property
    def risk_flags(self) -> str:
        flags = {"yellow": "Y", "red": "R"}.get(self.colour, "")
        return flags + ("I" if "home isolation" in self.labels else "")

    @property
    def vacant(self) -> bool:
        return "vacant" in self.labels


@dataclass
class SiteSpec:
    id: str
    name: str
    street: str
    community: str
    grid: str


@dataclass
class District:
    residents: list[Resident]
    sites: list[SiteSpec]
    grids: list[tuple[str, str, str]] = field(default_factory=list)  # (street, community, grid)

    def register_rows(self) -> list[dict[str, object]]:
        return [
            {
                "resident_code": r.code,
                "name": r.name,
                "phone": r.phone,
                "street": r.street,
                "community": r.community,
                "grid": r.grid,
                "building": r.building,
                "unit": r.unit,
                "household": r.household,
                "labels": ";".join(r.labels),
                "health_code": r.colour,
                "away": r.away,
            }
            for r in self.residents
        ]


def _resident_code(rng: random.Random, serial: int) -> str:
    if rng.random() < 0.08:  # QR tokens for those whose ID must not be shown
        body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(16))
        return codes.make_resident_token(body)
    year = rng.randint(1935, 2020)
    body = f"410105{year:04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{serial % 1000:03d}"
    return codes.make_resident_id(body)


def district(n_residents: int, n_sites: int = 6, seed: int = 7) -> District:
    """``n_residents`` people in households of 1-5, spread over grids with one site each
    (more grids than sites wrap round)."""
    rng = random.Random(seed)
    n_streets = max(1, min(len(STREETS), n_sites // 2 or 1))
    grids: list[tuple[str, str, str]] = []
    for g in range(max(n_sites, 1)):
        street = STREETS[g % n_streets]
        community = f"{street[:2]}社区{g // 2 + 1}"
        grids.append((street, community, f"G{g + 1:03d}"))
    sites = [
        SiteSpec(id=f"S{i + 1:03d}", name=f"采样点{i + 1}", street=s, community=c, grid=g)
        for i, (s, c, g) in enumerate(grids)
    ]
    residents: list[Resident] = []
    seen: set[str] = set()
    serial = 0
    household_no = 0
    while len(residents) < n_residents:
        street, community, grid = grids[household_no % len(grids)]
        household_no += 1
        building = f"{rng.randint(1, 12)}号楼"
        unit = f"{rng.randint(1, 4)}单元"
        household = f"{rng.randint(1, 30):02d}{rng.randint(1, 4):02d}"
        labels = ["permanent"]
        roll = rng.random()
        if roll < 0.03:
            labels = ["vacant"]
        elif roll < 0.05:
            labels.append("home isolation")
        elif roll < 0.09:
            labels.append("elderly living alone")
        elif roll < 0.11:
            labels.append("disabled")
        elif roll < 0.13:
            labels.append("home observation")
        size = 1 if "elderly living alone" in labels else rng.choice((1, 2, 2, 3, 3, 3, 4, 5))
        for _ in range(size):
            if len(residents) >= n_residents:
                break
            serial += 1
            code = _resident_code(rng, serial)
            while code in seen:
                serial += 1
                code = _resident_code(rng, serial)
            seen.add(code)
            colour = rng.choices(("green", "yellow", "red"), (0.985, 0.01, 0.005))[0]
            residents.append(
                Resident(
                    code=code,
                    name=rng.choice(SURNAMES)
                    + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
                    phone=f"1{rng.choice('3578')}{rng.randint(0, 999_999_999):09d}",
                    street=street,
                    community=community,
                    grid=grid,
                    building=building,
                    unit=unit,
                    household=f"{grid}-{building}-{unit}-{household}",
                    labels=list(labels),
                    colour=colour,
                    away=rng.random() < 0.02,
                )
            )
    return District(residents=residents, sites=sites, grids=grids)
