"""HL7 v2 through the library: declared separators, escapes, batches and files."""

from __future__ import annotations

from sampling.lab.parse import control_id, messages, read_file, read_hl7
from tests.conftest import tube

# Separators '#' (field), '$' (component), '*' (repetition), '@' (escape), '%'
# (subcomponent): '^', '~', '|' and '\' are plain text in these messages.
ODD = "\r".join(
    [
        "MSH#$*@%#LIS#L^1~2|x\\y#SAMPLING#CDC#20220501120000##ORU$R01$ORU_R01#C-1#P#2.5.1",
        f"OBR#1##{tube(1)}$LAB9#94500-6$SARS-CoV-2 RNA$LN####20220501110000",
        "OBX#1#CWE#94500-6$SARS-CoV-2 RNA$LN##260385009$Not detected$SCT*ignored######F",
    ]
)
ESCAPED = "\r".join(
    [
        "MSH#$*@%#LIS#LAB9#SAMPLING#CDC#20220501120000##ORU$R01#C-2#P#2.5.1",
        f"OBR#1##{tube(2)}#94500-6####20220501110000",
        "OBX#1#CWE#94500-6##Detected######F############Lab@F@East@S@2@E@",
        "OBX#2#NM#ORF1ab$ORF1ab gene Ct##23.4######F",
        "OBX#3#NM#N$N gene Ct##25.1######F",
    ]
)


def test_declared_separators_and_escapes() -> None:
    got = read_hl7(ODD + "\r" + ESCAPED)
    assert got.rows_in == 2 == len(got.good), got.problems
    first, second = (r for _, r in got.good)
    # '^', '~', '|' and '\' in MSH-4 are text under these separators, not structure.
    assert (first.tube, first.outcome, first.lab) == (tube(1), "negative", "L^1~2|x\\y")
    # OBX-23 with escaped field, component and escape characters, unescaped.
    assert (second.tube, second.outcome, second.lab) == (tube(2), "positive", "Lab#East$2@")
    assert (second.ct_orf1ab, second.ct_n) == (23.4, 25.1)


def test_default_separators_with_escapes_in_a_value() -> None:
    msg = "\r".join(
        [
            "MSH|^~\\&|LIS|Lab\\T\\Co\\F\\1|||20220501120000||ORU^R01|D-1|P|2.5.1",
            f"OBR|1||{tube(3)}|94500-6|||20220501110000",
            "OBX|1|CWE|94500-6||\\X4E\\egative||||||F",
        ]
    )
    (row,) = (r for _, r in read_hl7(msg).good)
    assert (row.tube, row.outcome, row.lab) == (tube(3), "negative", "Lab&Co|1")


def test_batch_and_file_envelopes() -> None:
    plain = "\r".join(
        [
            "MSH|^~\\&|LIS|LAB9|||20220501120000||ORU^R01|P-1|P|2.5.1",
            f"OBR|1||{tube(4)}|94500-6|||20220501110000",
            "OBX|1|CWE|94500-6||Negative||||||F",
        ]
    )
    got = read_hl7("\r".join(["BHS|^~\\&|LIS|LAB9", plain, "BTS|1"]))
    assert [r.tube for _, r in got.good] == [tube(4)] and not got.problems
    # a file of two batches, each message with its own separators, LF line ends
    file = "\n".join(
        ["FHS|^~\\&|LIS|LAB9", "BHS|^~\\&", ODD, "BTS|1", "BHS|^~\\&", ESCAPED, "BTS|3", "FTS|2"]
    )
    got = read_file("lab.hl7", file.encode())
    assert [r.tube for _, r in got.good] == [tube(1), tube(2)]
    # the second trailer's count disagrees: reported, the results still read
    assert [p.row for p in got.problems] == [0]
    assert "BTS-1 says 3" in got.problems[0].reason
    assert [control_id(m) for m in messages(file)] == ["C-1", "C-2"]


def test_broken_envelope_read_message_by_message() -> None:
    # A segment before any message header: the library refuses the batch.
    text = "\r".join(["BHS|^~\\&", "PID|1", ODD, "BTS|1"])
    got = read_hl7(text)
    assert [r.tube for _, r in got.good] == [tube(1)]
    assert "envelope" in got.problems[0].reason
