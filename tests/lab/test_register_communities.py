"""The register kept community by community: a file replaces only the communities (or
grids) it names, whatever order the files come in; a registrar uploads only its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from polars.testing import assert_frame_equal

from sampling.lab.register import import_register
from sampling.privacy import ResidentHasher
from tests.conftest import SECRET, Api, resident

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from sampling.settings import Settings

HASHER = ResidentHasher(bytes.fromhex(SECRET))
HEAD = "resident,name,street,community,grid,building,unit,household,labels,colour\n"


def rows(*people: tuple[int, str, str, str]) -> str:
    """(resident n, community, household, colour): grid G-<community>, building 1, unit 1."""
    return HEAD + "".join(
        f"{resident(n)},居民{n},花园路,{c},G-{c},1,1,{hh},,{colour}\n"
        for n, c, hh, colour in people
    )


C1 = rows((1, "C1", "101", ""), (2, "C1", "101", ""), (3, "C1", "102", "yellow"))
C2 = rows((11, "C2", "201", ""), (12, "C2", "202", "red"))


def _import(tmp: Path, data: Path, text: str, name: str, **kw: object) -> object:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    rep, _ = import_register(path, HASHER, data, **kw)  # type: ignore[arg-type]
    return rep


def _register(data: Path) -> pl.DataFrame:
    return pl.read_parquet(data / "register" / "register.parquet")


def test_two_communities_in_either_order_give_the_same_register(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _import(tmp_path, one, C1, "c1.csv")
    _import(tmp_path, one, C2, "c2.csv")
    _import(tmp_path, two, C2, "c2.csv")
    _import(tmp_path, two, C1, "c1.csv")
    assert_frame_equal(_register(one), _register(two))
    assert _register(one).height == 5
    # Importing C1 again, changed, leaves C2 exactly as it was.
    before_c2 = _register(one).filter(pl.col("community") == "C2")
    c1_new = rows((1, "C1", "101", "red"), (3, "C1", "102", "yellow"), (4, "C1", "103", ""))
    dry = _import(tmp_path, one, c1_new, "c1b.csv", dry_run=True)
    assert _register(one).height == 5  # a dry run stores nothing
    done = _import(tmp_path, one, c1_new, "c1b.csv")
    for rep in (dry, done):
        (change,) = rep.changes  # type: ignore[attr-defined]
        assert (change.community, change.residents_added, change.residents_removed,
                change.residents_changed) == ("C1", 1, 1, 1)  # fmt: skip
        # 101 lost resident 2 and resident 1 changed colour; 103 is new; 102 as it was.
        assert (change.households_added, change.households_removed,
                change.households_changed) == (1, 0, 1)  # fmt: skip
        assert (change.residents_before, change.residents_after) == (3, 3)
        assert rep.replaced == ["C1"]  # type: ignore[attr-defined]
    assert_frame_equal(_register(one).filter(pl.col("community") == "C2"), before_c2)
    assert sorted(_register(one)["resident"]) == sorted(
        [resident(n) for n in (1, 3, 4, 11, 12)]
    )


def test_a_resident_of_another_community_is_refused_and_grids_replace_grids(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _import(tmp_path, data, C1 + C2.removeprefix(HEAD), "all.csv")
    moved = rows((11, "C1", "101", ""), (5, "C1", "104", ""))
    rep = _import(tmp_path, data, moved, "c1.csv")
    assert rep.rows_stored == 1 and rep.rows_refused == 1  # type: ignore[attr-defined]
    (problem,) = rep.problems  # type: ignore[attr-defined]
    assert problem.row == 2 and "community C2" in problem.reason
    assert resident(11) in _register(data).filter(pl.col("community") == "C2")["resident"]
    # By grid: only grid G-C2 is replaced; C1's grid stays.
    grid = rows((13, "C2", "203", ""))
    rep = _import(tmp_path, data, grid, "g.csv", scope="grid")
    assert rep.replaced == ["G-C2"]  # type: ignore[attr-defined]
    assert sorted(_register(data).filter(pl.col("community") == "C2")["resident"]) == [
        resident(13)
    ]
    assert _register(data).filter(pl.col("community") == "C1").height == 1


def test_a_registrar_uploads_only_its_communities_and_is_journaled(
    api: Api, settings: Settings, r: redis.Redis
) -> None:
    tok = api.device("reg1", "registrar", communities=["C1"])

    def upload(text: str, **params: str) -> object:
        return api.client.post(
            "/v1/register/", content=text.encode(), headers=api.h(tok),
            params={"name": "c1.csv", **params},
        )  # fmt: skip

    dry = upload(C1, dry_run="true")
    assert dry.status_code == 200, dry.text  # type: ignore[attr-defined]
    assert dry.json()["changes"][0]["residents_added"] == 3  # type: ignore[attr-defined]
    assert not (settings.data_dir / "register").exists()
    assert upload(C1).status_code == 200  # type: ignore[attr-defined]
    stored = (settings.data_dir / "register" / "register.parquet").read_bytes()
    for text, params in ((C2, {}), (C1 + C2.removeprefix(HEAD), {}), (C1, {"replace": "all"})):
        refused = upload(text, **params)
        assert refused.status_code == 403, refused.text  # type: ignore[attr-defined]
        assert refused.json()["code"] == "forbidden"  # type: ignore[attr-defined]
    assert (settings.data_dir / "register" / "register.parquet").read_bytes() == stored
    # The admin may upload any community.
    done = api.client.post("/v1/register/", content=C2.encode(), headers=api.h(api.admin))
    assert done.status_code == 200 and done.json()["replaced"] == ["C2"], done.text
    journal = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("{sampling}:admin")
    ]
    imports = [e for e in journal if e["k"] == "register_import"]
    assert [(e["d"], e["replaced"], e["residents_added"]) for e in imports] == [
        ("reg1", "C1", "3"),
        ("admin0", "C2", "2"),
    ]
    assert imports[0]["file"] == "c1.csv" and imports[0]["stored"] == "3"
