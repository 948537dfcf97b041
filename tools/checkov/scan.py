#!/usr/bin/env python3
"""Run checkov over synthesized stacks and apply the inline skips the constructs wrote.

    python tools/checkov/scan.py [cdktf.out/stacks/infra ...]   # default: every stack in cdktf.out

checkov runs from its own environment (tools/checkov/.venv, `make checkov-env`): its pins clash with
the app's. Each stack's cdk.tf.json is scanned with ``--framework terraform_json``. checkov 3.3 does
not read inline skips in Terraform JSON, so this script does: a failed check whose resource carries
``"//": {"checkov": {"skip": [{"id": ..., "comment": ...}]}}`` (see constructs_lib/checkov.py)
counts as skipped, with its reason. A skip that matches no failure is reported as stale, so the
list of exceptions cannot outlive its reason. Exit status: 0 clean, 1 findings, 2 cannot scan.
Standard library only: it runs under any Python 3.9+.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / "tools" / "checkov" / ".venv" / "bin" / "checkov"
STACK_FILE = "cdk.tf.json"


class ScanError(Exception):
    """checkov is missing or did not produce a report."""


@dataclass(frozen=True)
class Finding:
    check_id: str
    check_name: str
    address: str  # aws_s3_bucket.data, data.aws_availability_zones.available
    reason: str = ""  # the skip's comment, for skipped findings

    def line(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"{self.check_id} on {self.address} ({self.check_name}){why}"


@dataclass
class StackReport:
    stack: str
    passed: int = 0
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    stale_skips: list[Finding] = field(default_factory=list)  # declared, but the check passes
    parsing_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.stale_skips or self.parsing_errors)

    def summary(self) -> str:
        return (f"{self.stack}: {self.passed} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"
                + (f", {len(self.stale_skips)} stale skips" if self.stale_skips else ""))

    def details(self) -> str:
        out = [self.summary()]
        out += [f"  FAILED  {f.line()}" for f in self.failed]
        out += [f"  STALE SKIP (the check passes; remove the skip)  {f.line()}" for f in self.stale_skips]
        out += [f"  PARSING ERROR  {p}" for p in self.parsing_errors]
        return "\n".join(out)


def require_checkov() -> Path:
    if not os.access(CHECKOV, os.X_OK):
        raise ScanError(f"checkov is not installed at {CHECKOV.relative_to(ROOT)}: run `make checkov-env`")
    return CHECKOV


_KEY_LINE = re.compile(r'^( *)"((?:[^"\\]|\\.)*)": \{\s*$')


def element_lines(text: str) -> dict[int, str]:
    """Line number (1-based) of each resource/data block's opening -> its address.

    checkov's Python checks name terraform_json resources ``resource.<name>`` without the type; the
    line a record starts on identifies the element. cdktf writes two-space indented JSON.
    """
    out: dict[int, str] = {}
    path: list[tuple[int, str]] = []  # (indent, key) of the enclosing objects
    for n, line in enumerate(text.splitlines(), start=1):
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key))
        keys = [k for _, k in path]
        if len(keys) == 3 and keys[0] in ("resource", "data"):
            prefix = "data." if keys[0] == "data" else ""
            out[n] = f"{prefix}{keys[1]}.{keys[2]}"
    return out


def declared_skips(stack: dict) -> dict[str, dict[str, str]]:
    """address -> {check id: reason} from each element's "//".checkov.skip."""
    out: dict[str, dict[str, str]] = {}
    for block, prefix in (("resource", ""), ("data", "data.")):
        for rtype, byname in (stack.get(block) or {}).items():
            for name, body in byname.items():
                entries = ((body or {}).get("//") or {}).get("checkov", {}).get("skip", [])
                if entries:
                    out[f"{prefix}{rtype}.{name}"] = {e["id"]: e.get("comment", "") for e in entries}
    return out


def run_checkov(stack_file: Path) -> dict:
    cmd = [str(require_checkov()), "--framework", "terraform_json", "-f", str(stack_file), "-o", "json",
           "--quiet", "--skip-download"]
    # No network: the guideline mappings and policy downloads are Prisma Cloud calls.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode not in (0, 1):
        raise ScanError(f"checkov exited {r.returncode} on {stack_file}: {r.stderr.strip()[-2000:]}")
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise ScanError(f"checkov printed no JSON report for {stack_file}: "
                        f"{r.stdout[:500]} {r.stderr[-1500:]}") from None
    if isinstance(report, list):  # one report per framework; we ask for one
        report = next((x for x in report if x.get("check_type") == "terraform_json"), {})
    return report


def scannable(stack: dict) -> dict:
    """The stack as checkov 3.3's terraform_json parser takes it: without the ``terraform`` block's plain attributes
    (``required_version``: its ``handle_block_type`` hands every value of that block to ``hclify``, which takes
    objects only, and the whole file fails to parse). No check reads them."""
    terraform = {k: v for k, v in (stack.get("terraform") or {}).items() if isinstance(v, dict)}
    return {**stack, "terraform": terraform} if "terraform" in stack else stack


def scan_stack(stack_dir: Path) -> StackReport:
    stack_file = Path(stack_dir) / STACK_FILE
    if not stack_file.is_file():
        raise ScanError(f"no {STACK_FILE} in {stack_dir}")
    stack = json.loads(stack_file.read_text())
    skips = declared_skips(stack)
    # cdktf's two-space layout, so that element_lines finds each element where checkov reports it.
    text = json.dumps(scannable(stack), indent=2)
    lines = element_lines(text)
    with tempfile.TemporaryDirectory() as tmp:
        scanned = Path(tmp) / STACK_FILE
        scanned.write_text(text)
        report = run_checkov(scanned)
    results = report.get("results", {})
    summary = report.get("summary", {})

    rep = StackReport(stack=Path(stack_dir).name, passed=int(summary.get("passed", 0)))
    rep.parsing_errors = list(results.get("parsing_errors", []) or [])
    if summary.get("parsing_errors"):
        rep.parsing_errors = rep.parsing_errors or [f"{summary['parsing_errors']} file(s) could not be parsed"]
    used: set[tuple[str, str]] = set()
    for rec in results.get("failed_checks", []):
        start = (rec.get("file_line_range") or [0])[0]
        address = lines.get(start) or rec.get("resource", "?")
        reason = skips.get(address, {}).get(rec["check_id"])
        finding = Finding(rec["check_id"], rec.get("check_name", ""), address, reason or "")
        if reason is not None:
            rep.skipped.append(finding)
            used.add((address, rec["check_id"]))
        else:
            rep.failed.append(finding)
    for address, entries in skips.items():
        for check_id, reason in entries.items():
            if (address, check_id) not in used:
                rep.stale_skips.append(Finding(check_id, "declared skip matched no failed check", address, reason))
    return rep


def main(argv: list[str]) -> int:
    dirs = [Path(a) for a in argv] or sorted(p.parent for p in (ROOT / "cdktf.out" / "stacks").glob(f"*/{STACK_FILE}"))
    if not dirs:
        print("error: no synthesized stacks; run `make synth` first or name stack directories", file=sys.stderr)
        return 2
    ok = True
    for d in dirs:
        try:
            rep = scan_stack(d)
        except ScanError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(rep.details())
        for f in rep.skipped:
            print(f"  skipped {f.line()}")
        ok = ok and rep.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
