"""Splits arithmetic records into two families for the multi-teacher experiment and tags each
record with the teacher that family routes to (the record's "teacher" field):
  addsub: every operation of the worked solution is + or -
  muldiv: at least one * or /
usage: families.py IN.jsonl OUT_PREFIX  ->  OUT_PREFIX.addsub.jsonl, OUT_PREFIX.muldiv.jsonl,
       OUT_PREFIX.mixed.jsonl (all records, tagged, in input order); prints the counts."""
import json
import os
import sys


def family(record):
    solution = record.get("solution", "")
    steps = solution.split(". The answer")[0]
    return "muldiv" if ("*" in steps or "/" in steps) else "addsub"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, prefix = sys.argv[1], sys.argv[2]
    outputs = {name: [] for name in ("addsub", "muldiv", "mixed")}
    with open(source) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{source}:{number}: not JSON ({error})")
            if "solution" not in record:
                sys.exit(f"{source}:{number}: no 'solution' field to tell the family from")
            record["teacher"] = family(record)
            outputs[record["teacher"]].append(record)
            outputs["mixed"].append(record)
    for name, records in outputs.items():
        path = f"{prefix}.{name}.jsonl"
        with open(path + ".tmp", "w") as f:
            for record in records:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
        os.replace(path + ".tmp", path)
    print(" ".join(f"{name}={len(records)}" for name, records in outputs.items()))


if __name__ == "__main__":
    main()
