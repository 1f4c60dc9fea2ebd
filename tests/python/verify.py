"""AdderBoard's verification protocol (../shared/reference/ADDERBOARD.md), written for the tests:
python verify.py submission.py -> imports it, build_model() once, add() on the 10 edge cases and 10,000 pairs of
random.Random(2025), prints progress, 'Results: P/T correct (X.XX%)', time, QUALIFIED and up to 20 failures."""
import importlib.util
import random
import sys
import time

EDGE = [(0, 0), (0, 1), (9999999999, 0), (9999999999, 1), (9999999999, 9999999999), (5000000000, 5000000000),
        (1111111111, 8888888889), (1234567890, 9876543210), (9999999999, 9999999999), (1, 9999999999)]


def cases():
    rng = random.Random(2025)
    return EDGE + [(rng.randint(0, 9999999999), rng.randint(0, 9999999999)) for _ in range(10000)]


def main(path):
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, metadata = module.build_model()
    print(f"{metadata['name']} by {metadata['author']}: {metadata['params']} parameters; {metadata['architecture']}")
    all_cases = cases()
    correct, failures = 0, []
    start = time.time()
    for i, (a, b) in enumerate(all_cases, 1):
        try:
            got = module.add(model, a, b)
        except Exception as e:  # an exception counts as a failure
            got = f"{type(e).__name__}: {e}"
        if got == a + b:
            correct += 1
        else:
            failures.append((a, b, a + b, got))
        if i % 1000 == 0:
            print(f"  {i}/{len(all_cases)}", flush=True)
    seconds = time.time() - start
    total = len(all_cases)
    print(f"Results: {correct}/{total} correct ({100 * correct / total:.2f}%)")
    print(f"Time: {seconds:.1f} s ({total / seconds:.0f} additions/s)")
    print("QUALIFIED" if correct >= 0.99 * total else "NOT QUALIFIED")
    for a, b, want, got in failures[:20]:
        print(f"  {a} + {b} = {want}, got {got}")


if __name__ == "__main__":
    main(sys.argv[1])
