"""Runs an AdderBoard submission for `adder verify --submission`: imports the file, calls build_model() once, then
answers blocks of pairs read from standard input with add(model, a, b).

Protocol (one line each, on the process's original standard output; the submission's own prints go to stderr):
  start:   "ready <metadata as JSON>", or "error <one line>" and exit 3
  request: "<n>" then n lines "<a> <b>"
  reply:   n lines, each the integer add returned, or "!<what it was>" (an exception, or not an integer)
"""
import importlib.util
import json
import operator
import os
import sys

MAX_TEXT = 100


def one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def answer(module, model, a, b):
    try:
        got = module.add(model, a, b)
    except Exception as e:  # AdderBoard counts an exception as a failure
        return "!raised " + one_line(f"{type(e).__name__}: {e}")
    if isinstance(got, bool):
        return "!bool " + str(got)
    try:
        return str(operator.index(got))
    except Exception:
        return "!" + one_line(f"{type(got).__name__} {got!r}")


def main(path):
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        try:
            import torch
            torch.set_num_threads(1)  # one worker a core: Adder starts several
        except Exception:
            pass
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        spec = importlib.util.spec_from_file_location("submission", path)
        if spec is None:
            raise ImportError("not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in ("build_model", "add"):
            if not callable(getattr(module, name, None)):
                raise AttributeError(f"the file defines no function {name}()")
        built = module.build_model()
        if not (isinstance(built, tuple) and len(built) == 2 and isinstance(built[1], dict)):
            raise TypeError("build_model() must return (model, metadata dict)")
        model, metadata = built
        meta = {k: one_line(metadata.get(k, "?")) for k in ("name", "author", "params", "architecture")}
    except BaseException as e:
        protocol.write("error " + one_line(f"{type(e).__name__}: {e}").replace("\n", " ") + "\n")
        protocol.flush()
        sys.exit(3)
    protocol.write("ready " + json.dumps(meta) + "\n")
    protocol.flush()
    stdin = sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            return
        replies = []
        for _ in range(int(line)):
            a, b = stdin.readline().split()
            replies.append(answer(module, model, int(a), int(b)))
        protocol.write("\n".join(replies) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main(sys.argv[1])
