"""Re-run every ```console block ($ lines) and every ```python block followed by a ```text
block in the given markdown files, and paste the real output back, so the docs show what
the code prints today. Run it after a change to the performance model:

    python scripts/refresh_docs.py README.md docs/getting-started.md docs/scenarios.md
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("HERMES_DOCS_WORK", "/tmp/hermes-docs-work"))
ENV = {**os.environ, "COLUMNS": "100"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\n", re.S | re.M)


def setup():
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    shutil.copytree(ROOT / "examples", WORK / "examples")


def sh(cmd):
    p = subprocess.run(["bash", "-c", cmd], cwd=WORK, env=ENV, capture_output=True, text=True)
    out = p.stdout + p.stderr
    lines = [l.rstrip() for l in out.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    print(f"[{p.returncode}] {cmd}", file=sys.stderr)
    return lines


def console(body):
    out = []
    for line in body.splitlines():
        if line.startswith("$ "):
            if out and out[-1] != "" and not out[-1].startswith("$ "):
                pass
            out.append(line)
            out.extend(sh(line[2:]))
    return "\n".join(out) + "\n"


def refresh(path):
    text = Path(path).read_text()
    blocks = list(FENCE.finditer(text))
    res, pos, skip = [], 0, set()
    for i, m in enumerate(blocks):
        if i in skip:
            continue
        lang, body = m.group(1), m.group(2)
        res.append(text[pos:m.start()])
        pos = m.end()
        if lang == "console" and "$ " in body:
            res.append("```console\n" + console(body) + "```\n")
        elif lang == "python" and i + 1 < len(blocks) and blocks[i + 1].group(1) == "text" \
                and text[m.end():blocks[i + 1].start()].strip() == "":
            (WORK / "snippet.py").write_text(body)
            out = sh("python snippet.py")
            res.append(m.group(0))
            res.append(text[m.end():blocks[i + 1].start()])
            res.append("```text\n" + "\n".join(out) + "\n```\n")
            pos = blocks[i + 1].end()
            skip.add(i + 1)
        else:
            res.append(m.group(0))
    res.append(text[pos:])
    Path(path).write_text("".join(res))


if __name__ == "__main__":
    setup()
    for f in sys.argv[1:]:
        refresh(f)
