"""Helpers of benchmarks/book_notebook.py: accuracy from an executed cell's epoch table, CPU time
of a kernel's process tree, the load average once a minute."""
from __future__ import annotations

import html
import os
import re
import threading
import time
from pathlib import Path

import nbformat


def table_accuracy(cell: nbformat.NotebookNode) -> float | None:
    """The last row's accuracy from the cell's last epoch table (HTML as fastai's, or text)."""
    found = None
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        texts = [data.get("text/html", "")] if "text/html" in data else []
        texts += [out.get("text", "")] if out.get("output_type") == "stream" else []
        texts += [data.get("text/plain", "")] if "text/html" not in data else []
        for text in texts:
            acc = _html_accuracy(text) if "<table" in text else _text_accuracy(text)
            found = acc if acc is not None else found
    return found


def _cell(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _number(text: str) -> float | None:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(%?)\s*", text)
    if not m:
        return None
    value = float(m.group(1))
    return value / 100 if m.group(2) or value > 1 else value


def _html_accuracy(text: str) -> float | None:
    heads = [_cell(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", text, re.S)]
    if "accuracy" not in heads:
        return None
    col = heads.index("accuracy")
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", text, re.S)]
    rows = [r for r in rows if len(r) == len(heads)]
    return _number(_cell(rows[-1][col])) if rows else None


def _text_accuracy(text: str) -> float | None:
    lines = [ln.split() for ln in text.replace("\r", "\n").splitlines()]
    head = next((ln for ln in lines if "accuracy" in ln), None)
    if head is None:
        return None
    col = head.index("accuracy")
    rows = [ln for ln in lines if len(ln) == len(head) and _number(ln[col]) is not None]
    return _number(rows[-1][col]) if rows else None


def tree_cpu(pid: int) -> float:
    """CPU seconds of process `pid` with its reaped children and its live descendants: the cells'
    cost in CPU time, which another user's load on the 2 cores inflates far less than wall time."""
    stats = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(d.name)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0))[1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == p]
    return total / os.sysconf("SC_CLK_TCK")


class Loads(threading.Thread):
    """os.getloadavg() once a minute (other people's work shares the 2 cores), also printed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rows: list[list[float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            self.rows.append([round(time.time()), *os.getloadavg()])
            print(f"[load] {time.strftime('%H:%M:%S')} {os.getloadavg()}", flush=True)
            if self.stop.wait(60):
                return
