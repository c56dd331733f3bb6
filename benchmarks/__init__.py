"""Side-by-side performance harness: Tidebase and DBOS Transact on the same Postgres.

    pip install -e '.[bench]'
    python -m benchmarks                 # embedded server, 3 rounds
    python -m benchmarks --url postgresql://… --rounds 5

Each library runs in its own process per round (in alternating order), on a fresh database of
the same server; figures are medians over rounds, reported as ratios measured in the same run.
"""
