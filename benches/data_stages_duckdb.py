"""Runs benches/data_stages.sql, the data stages of relcap written as DuckDB SQL, on a study's
Parquet input: `python3 benches/data_stages_duckdb.py DATA OUT [SQL]`.

DATA is the folder of the five input tables (Parquet), OUT an output folder (made, with
ingest/, clean/, score/ and link/ under it; existing files in them are replaced). The pseudonym
key is RELCAP_PSEUDONYM_KEY (a fixed text when unset: the outputs are thrown away). Prints the
rows of each output table, so that a run that produced nothing is seen. `relcap bench` runs it
as a child process and times it as it times the stages.
"""

import os
import sys

import duckdb


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    data, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    here = os.path.dirname(os.path.abspath(__file__))
    sql_path = sys.argv[3] if len(sys.argv) == 4 else os.path.join(here, "data_stages.sql")
    key = os.environ.get("RELCAP_PSEUDONYM_KEY", "duckdb-baseline-key")
    for stage in ("ingest", "clean", "score", "link"):
        os.makedirs(os.path.join(out, stage), exist_ok=True)
    with open(sql_path, encoding="utf-8") as f:
        sql = f.read()
    quote = lambda s: s.replace("'", "''")
    sql = sql.replace("${DATA}", quote(data)).replace("${OUT}", quote(out))
    sql = sql.replace("${KEY}", quote(key))
    con = duckdb.connect()
    con.execute(sql)
    for stage in ("ingest", "clean", "score", "link"):
        for name in sorted(os.listdir(os.path.join(out, stage))):
            path = os.path.join(out, stage, name)
            rows = con.execute(f"SELECT count(*) FROM read_parquet('{quote(path)}')").fetchone()[0]
            print(f"{stage}/{name}: {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
