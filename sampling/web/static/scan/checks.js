// The check characters of sampling/codes.py, ported so the handheld page checks a
// typed code before anything is sent, and offers the codes one slip away even
// with no network. Keep in step with sampling/codes.py and sampling/scan/typed.py:
// tests/web/test_checks_js.py compares the two on thousands of codes.
//   resident: 17 digits + ISO 7064 MOD 11-2 ("0-9X"), or "R" + 16 of 0-9A-Z + MOD 37-2
//   tube: "T" + 11 digits + Damm; box: "B" + 9 digits + Damm
"use strict";
(function (root) {
  const DIGITS = "0123456789";
  const ALNUM = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const ALNUM37 = ALNUM + "*";
  const ID_CHECK = "10X98765432";
  const ID_WEIGHTS = Array.from({ length: 17 }, (_, i) => {
    let w = 1;
    for (let k = 0; k < 17 - i; k++) w = (w * 2) % 11;
    return w;
  });
  const DAMM = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2], [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9], [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8], [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4], [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5], [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
  ];
  const LEN = { resident: 18, tube: 13, box: 11 };
  const PREFIX = { T: [13, "tube"], B: [11, "box"], R: [18, "resident"] };
  const ALLOWED = ALNUM37;
  const isDigits = (s) => s.length > 0 && [...s].every((c) => DIGITS.includes(c));

  function idCheckChar(body) {
    let total = 0;
    for (let i = 0; i < 17; i++) total += Number(body[i]) * ID_WEIGHTS[i];
    return ID_CHECK[total % 11];
  }
  function digitCheck(body) {
    let interim = 0;
    for (const c of body) interim = DAMM[interim][Number(c)];
    return DIGITS[interim];
  }
  function alnumCheck(body) {
    let p = 0;
    for (const c of body) p = ((p + ALNUM.indexOf(c)) * 2) % 37;
    return ALNUM37[(38 - p) % 37];
  }
  const normalize = (text) => text.trim().toUpperCase();

  function classify(text) {
    const code = normalize(text);
    const n = code.length;
    if (n === 18 && isDigits(code.slice(0, 17)) && ID_CHECK.includes(code[17])) return "resident";
    if (n === 18 && code[0] === "R" && [...code.slice(1, 17)].every((c) => ALNUM.includes(c)) &&
        ALNUM37.includes(code[17])) return "resident";
    if (n === 13 && code[0] === "T" && isDigits(code.slice(1))) return "tube";
    if (n === 11 && code[0] === "B" && isDigits(code.slice(1))) return "box";
    return "unknown";
  }

  function isValid(text, kind) {
    const code = normalize(text);
    const found = classify(code);
    if (found === "unknown" || (kind && found !== kind)) return false;
    if (found === "resident") {
      if (code[0] === "R") return alnumCheck(code.slice(1, 17)) === code[17];
      return idCheckChar(code.slice(0, 17)) === code[17];
    }
    return digitCheck(code.slice(1, -1)) === code[code.length - 1];
  }

  function alphabet(code, i) {
    if (classify(code) === "resident" && code[0] === "R" && i > 0) {
      return i === 17 ? ALNUM37 : ALNUM;
    }
    if (i === 17 && code.length === 18 && code[0] !== "R") return DIGITS + "X";
    if (i === 0 && "TBR".includes(code[0]) && !DIGITS.includes(code[0])) return code[0];
    return DIGITS;
  }

  function typoCandidates(text) {
    const code = normalize(text);
    if (classify(code) === "unknown" || isValid(code)) return [];
    const found = new Set();
    for (let i = 0; i < code.length; i++) {
      for (const c of alphabet(code, i)) {
        if (c === code[i]) continue;
        const cand = code.slice(0, i) + c + code.slice(i + 1);
        if (isValid(cand)) found.add(cand);
      }
    }
    for (let i = 0; i < code.length - 1; i++) {
      if (code[i] === code[i + 1]) continue;
      const cand = code.slice(0, i) + code[i + 1] + code[i] + code.slice(i + 2);
      if (isValid(cand)) found.add(cand);
    }
    return [...found].sort();
  }

  // sampling/scan/typed.py: separators dropped, and a slip that broke the shape.
  const clean = (text) => normalize(text).replace(/[\s-]+/g, "");

  function candidates(text) {
    const code = clean(text);
    const found = typoCandidates(code);
    if (found.length || classify(code) !== "unknown") return found;
    if (![18, 13, 11].includes(code.length)) return [];
    const near = new Set();
    for (let i = 0; i < code.length; i++) {
      for (const c of ALLOWED) near.add(code.slice(0, i) + c + code.slice(i + 1));
    }
    for (let i = 0; i < code.length - 1; i++) {
      near.add(code.slice(0, i) + code[i + 1] + code[i] + code.slice(i + 2));
    }
    return [...near].filter((c) => c !== code && isValid(c)).sort();
  }

  function intendedKind(code) {
    if (PREFIX[code[0]]) return PREFIX[code[0]][1];
    if (DIGITS.includes(code[0] || "x")) return "resident";
    return "unknown";
  }

  // The same answer as POST /v1/codes/check, computed here.
  function check(text) {
    const code = clean(text);
    if (isValid(code)) return { code, accepted: true, kind: classify(code) };
    return { code, accepted: false, kind: intendedKind(code), candidates: candidates(code) };
  }

  root.Checks = { classify, isValid, typoCandidates, candidates, check, clean, normalize,
    idCheckChar, digitCheck, alnumCheck, LEN };
})(typeof window !== "undefined" ? window : self);
