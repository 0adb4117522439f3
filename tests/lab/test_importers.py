"""Every bad-input path of the register and results importers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sampling import codes
from sampling.lab.parse import read_csv, read_file, read_hl7
from sampling.lab.register import import_register
from sampling.privacy import ResidentHasher
from tests.conftest import SECRET, resident, tube

HASHER = ResidentHasher(bytes.fromhex(SECRET))
HEADER = "resident,name,phone,street,community,grid,building,unit,household,labels,colour,away\n"


def _row(code: str, name: str = "张三", labels: str = "", colour: str = "", away: str = "") -> str:
    return f"{code},{name},,S1,C1,G1,1,1,101,{labels},{colour},{away}\n"


def _garble(code: str) -> str:
    last = code[-1]
    return code[:-1] + ("0" if last != "0" else "1")


def _import(tmp_path: Path, text: str, name: str = "reg.csv", dry_run: bool = False) -> object:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    report, _ = import_register(path, HASHER, tmp_path / "data", dry_run=dry_run)
    return report


def test_register_bad_rows_each_with_row_and_reason(tmp_path: Path) -> None:
    text = HEADER + "".join(
        [
            _row(resident(1)),
            _row(_garble(resident(2))),
            _row(resident(1)),
            _row(resident(3), labels="martian"),
            _row(resident(4), colour="blue"),
            _row(resident(5), away="perhaps"),
            _row(resident(6), name=""),
            _row("", name="无码"),
            _row(resident(7), labels="独居老人;残疾", colour="黄码", away="否"),
        ]
    )
    rep = _import(tmp_path, text)
    assert (rep.rows_read, rep.rows_stored, rep.rows_refused) == (9, 2, 7)
    reasons = {p.row: p.reason for p in rep.problems}
    assert "check character" in reasons[3]
    assert reasons[4] == "duplicate resident: first listed on row 2"
    assert "label" in reasons[5] and "colour" in reasons[6] and "away" in reasons[7]
    assert reasons[8] == "the name is missing" and reasons[9] == "the resident code is missing"
    stored = pl.read_parquet(tmp_path / "data" / "register" / "register.parquet")
    assert stored["labels"].to_list() == ["", "elderly_alone;disabled"]
    assert stored["rhash"].to_list() == [HASHER.hex(resident(1)), HASHER.hex(resident(7))]


def test_register_dry_run_stores_nothing(tmp_path: Path) -> None:
    rep = _import(tmp_path, HEADER + _row(resident(1)), dry_run=True)
    assert rep.rows_stored == 1 and rep.dry_run
    assert not (tmp_path / "data" / "register").exists()


def test_register_missing_column_refuses_every_row(tmp_path: Path) -> None:
    text = "resident,name,street,community,grid\n" + f"{resident(1)},a,S,C,G\n" * 3
    rep = _import(tmp_path, text)
    assert (rep.rows_read, rep.rows_stored, rep.rows_refused) == (3, 0, 3)
    assert "building" in rep.problems[0].reason and rep.problems[0].row == 0


def test_register_empty_file(tmp_path: Path) -> None:
    rep = _import(tmp_path, "")
    assert (rep.rows_read, rep.rows_stored, rep.rows_refused) == (0, 0, 0)
    assert rep.problems[0].reason == "the file is empty"
    rep = _import(tmp_path, HEADER, name="header-only.csv")
    assert (rep.rows_read, rep.rows_stored, rep.rows_refused) == (0, 0, 0)


def test_register_risk_flags(tmp_path: Path) -> None:
    path = tmp_path / "reg.csv"
    path.write_text(
        HEADER + _row(resident(1), colour="red") + _row(resident(2), labels="home isolation")
        + _row(resident(3), colour="yellow", labels="居家隔离") + _row(resident(4)),
        encoding="utf-8",
    )  # fmt: skip
    _, flags = import_register(path, HASHER, tmp_path / "data")
    assert flags.rows() == [(resident(1), "R"), (resident(2), "I"), (resident(3), "YI")]


@pytest.mark.parametrize("suffix", ["xlsx", "parquet"])
def test_register_xlsx_and_parquet_chinese_headers(tmp_path: Path, suffix: str) -> None:
    frame = pl.DataFrame(
        {"身份证号": [resident(1), _garble(resident(2))], "姓名": ["王五", "赵六"],
         "街道": ["S1"] * 2, "社区": ["C1"] * 2, "网格": ["G1"] * 2, "楼栋": ["1"] * 2,
         "单元": ["1"] * 2, "户号": ["101", "102"], "标签": ["空置", ""],
         "健康码": ["绿码", ""], "外出": [False, True]}
    )  # fmt: skip
    path = tmp_path / f"reg.{suffix}"
    if suffix == "xlsx":
        frame.write_excel(path)
    else:
        frame.write_parquet(path)
    rep, _ = import_register(path, HASHER, tmp_path / "data")
    assert (rep.rows_read, rep.rows_stored, rep.rows_refused) == (2, 1, 1)
    assert rep.problems[0].row == 3
    stored = pl.read_parquet(tmp_path / "data" / "register" / "register.parquet")
    assert stored.select("labels", "colour", "away").row(0) == ("vacant", "green", False)


def test_register_million_rows_counted_exactly(tmp_path: Path) -> None:
    n = 1_000_000
    bodies = pl.Series(range(n)).map_elements(lambda i: f"{11010519900000000 + i:017d}",
                                              return_dtype=pl.String)  # fmt: skip
    codes_ = [codes.make_resident_id(b) for b in bodies]
    codes_[10] = _garble(codes_[10])
    codes_[20] = codes_[19]
    frame = pl.DataFrame({"resident": codes_, "name": "x", "street": "S", "community": "C",
                          "grid": "G", "building": "1", "unit": "1", "household": "1"})  # fmt: skip
    path = tmp_path / "big.parquet"
    frame.write_parquet(path)
    rep, _ = import_register(path, HASHER, tmp_path / "data", dry_run=True)
    assert rep.rows_read == n == rep.rows_stored + rep.rows_refused
    assert [p.row for p in rep.problems] == [12, 22]


# -- results --------------------------------------------------------------------------------

RHEAD = "tube,outcome,ct_orf1ab,ct_n,lab,tested_at\n"


def test_results_csv_bad_rows() -> None:
    text = RHEAD + "".join(
        [
            f"{tube(1)},negative,,,L1,2022-05-01 14:00\n",
            f"{_garble(tube(2))},negative,,,L1,2022-05-01 14:00\n",
            f"{resident(1)},negative,,,L1,2022-05-01 14:00\n",
            f"{tube(3)},maybe,,,L1,2022-05-01 14:00\n",
            f"{tube(4)},positive,,,L1,2022-05-01 14:00\n",
            f"{tube(5)},positive,abc,20,L1,2022-05-01 14:00\n",
            f"{tube(6)},阳性,22.1,99,L1,2022-05-01 14:00\n",
            f"{tube(7)},阴性,,,L1,yesterday\n",
            f"{tube(8)},阴性,,,,2022-05-01 14:00\n",
            f"{tube(9)},阳性,22.1,23,L1,20220501140000\n",
        ]
    )
    got = read_csv(text)
    assert got.rows_in == 10 == len(got.good) + got.refused
    assert [n for n, _ in got.good] == [2, 11]
    reasons = [p.reason for p in got.problems]
    assert "check digit" in reasons[0] and "not a tube code" in reasons[1]
    assert "outcome" in reasons[2] and "Ct values" in reasons[3] and "not a number" in reasons[4]
    assert "outside" in reasons[5] and "not a time" in reasons[6] and "lab" in reasons[7]
    assert got.good[1][1].ct_orf1ab == 22.1 and got.good[1][1].outcome == "positive"


def test_results_csv_missing_column_and_empty() -> None:
    got = read_csv("tube,outcome\n" + f"{tube(1)},negative\n" * 5)
    assert (got.rows_in, got.refused, len(got.good)) == (5, 5, 0)
    assert "tested_at" in got.problems[0].reason
    empty = read_csv("")
    assert (empty.rows_in, empty.refused) == (0, 0) and "empty" in empty.problems[0].reason


def test_results_csv_million_rows_counted_exactly() -> None:
    good = f"{tube(1)},negative,,,L1,1651370400000\n"
    bad = f"{_garble(tube(1))},negative,,,L1,1651370400000\n"
    text = RHEAD + good * 499_999 + bad + good * 500_000
    got = read_file("r.csv", text.encode())
    assert got.rows_in == 1_000_000 == len(got.good) + got.refused
    assert got.refused == 1 and got.problems[0].row == 500_001


def test_hl7_messages() -> None:
    msgs = "\n".join(
        [
            "MSH|^~\\&|LIS|LAB9|||20220501120000||ORU^R01|1|P|2.5.1",
            f"OBR|1||{tube(1)}^LAB9|94500-6|||20220501110000",
            "OBX|1|CWE|94500-6^SARS-CoV-2 RNA^LN||260385009^Negative^SCT||||||F",
            "OBR|2|||94500-6|||20220501110500",
            f"SPM|1|{tube(2)}^LAB9",
            "OBX|1|CWE|94500-6^SARS-CoV-2 RNA^LN||Positive||||||F|||20220501113000",
            "OBX|2|NM|ORF1ab^ORF1ab gene Ct||23.4||||||F",
            "OBX|3|NM|N^N gene Ct||25.1||||||F",
            "MSH|^~\\&|LIS|LAB9|||20220501120000||ORU^R01|2|P|2.5.1",
            f"OBR|1||{_garble(tube(3))}|94500-6|||20220501110000",
            "OBX|1|CWE|94500-6||Negative||||||F",
            "MSH|^~\\&|LIS|LAB9|||20220501120000||ORU^R01|3|P|2.5.1",
        ]
    )
    got = read_hl7(msgs)
    assert got.rows_in == 4 == len(got.good) + got.refused
    first, second = got.good[0][1], got.good[1][1]
    assert (first.tube, first.outcome, first.lab) == (tube(1), "negative", "LAB9")
    assert (second.tube, second.outcome, second.ct_orf1ab, second.ct_n) == (
        tube(2), "positive", 23.4, 25.1,
    )  # fmt: skip
    assert "check digit" in got.problems[0].reason and "message 2" in got.problems[0].reason
    assert "no OBR" in got.problems[1].reason
    assert read_hl7("").problems[0].row == 0
