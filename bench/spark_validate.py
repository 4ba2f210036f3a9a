"""Great Expectations on Spark (pyspark in local mode) against nlpflow's validation chunk by
chunk, on the same synthetic rows, side by side: should validate run on GX's Spark datasource?

- Spark: the gathered splits read by Spark; the columns the suite's cross-row checks need built
  in Spark (window functions for repeats, joins for test texts in train and for class counts,
  a pandas UDF running nlpflow's normalize_text for the normalised leak); then the suite's
  checks that GX ships with Spark metrics (16 of 20: nlpflow's own expectations, encoding
  damage, script and drift, have pandas metrics only) through a Spark datasource, results as
  SUMMARY (COMPLETE would collect every offending row to the driver).
- nlpflow: `validate` with runtime.max_memory_mb (GX on pandas chunks, the full suite of 20).

Each runs in a process of its own; its process tree (the JVM included) is sampled for RSS, and
its CPU time summed. Needs the spark extra: pip install 'nlpflow[spark]' (and Java 17+).

    python bench/spark_validate.py --rows 1000000 [--budget-mb 1024] [--cores 2]

Prints a Markdown table and writes reports/bench/spark_validate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd  # module-level: pyspark reads the pandas UDF's type hints from here

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from scale_data import BUDGET_MB, CACHE, make_splits, measured  # noqa: E402

SPLITS = ("train", "validation", "test")


def _tree_cpu() -> float:
    """CPU seconds of this process and its live children (Spark's JVM is one)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def _spark_table(spark: Any, src: Path) -> Any:
    """build_frame's table in Spark: the splits in order, and the cross-row columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from nlpflow.data.checks import variants_of_counts
    from nlpflow.data.text import normalize_text

    parts = [
        spark.read.parquet(str(src / f"{s}.parquet"))
        .withColumn("split", F.lit(s)).withColumn("split_no", F.lit(i))
        for i, s in enumerate(SPLITS)
    ]  # fmt: skip
    frame = parts[0].unionByName(parts[1]).unionByName(parts[2])
    frame = frame.withColumn("row_id", F.monotonically_increasing_id())  # in file order

    @F.pandas_udf("string")
    def normalized(texts: pd.Series) -> pd.Series:
        return texts.map(normalize_text, na_action="ignore")

    train = frame.filter(F.col("split") == "train")
    counts = train.groupBy("label").agg(F.count("*").alias("train_examples_of_label"))
    largest = counts.agg(F.max("train_examples_of_label")).first()[0] or 0
    labels = {
        r["label"]: r["n"]
        for r in frame.groupBy("label").agg(F.count("*").alias("n")).collect()
        if r["label"]
    }
    variants = list(variants_of_counts(labels))
    first = Window.partitionBy("text").orderBy("split_no", "row_id")
    train_texts = train.select("text").distinct().withColumn("in_train", F.lit(True))
    train_keys = (
        train.select(normalized("text").alias("key"))
        .distinct()
        .withColumn("key_in_train", F.lit(True))
    )
    table = (
        frame.join(counts, "label", "left")
        .fillna({"train_examples_of_label": 0})
        .withColumn("label_imbalance_ratio",
                    F.when(F.col("train_examples_of_label") > 0, F.lit(float(largest)) / F.col("train_examples_of_label")).otherwise(0.0))
        .withColumn("label_is_variant", F.col("label").isin(variants) & F.col("label").isNotNull())
        .withColumn("is_repeat", (F.row_number().over(first) > 1) & F.col("text").isNotNull())
        .join(train_texts, "text", "left")
        .withColumn("test_text_in_train", (F.col("split") == "test") & F.coalesce(F.col("in_train"), F.lit(False)))
        .withColumn("key", F.when(F.col("split") != "validation", normalized("text")))
        .join(train_keys, "key", "left")
        .withColumn("test_text_in_train_normalized",
                    (F.col("split") == "test") & F.coalesce(F.col("key_in_train"), F.lit(False)))
        .withColumn("text_tokens", F.size(F.filter(F.split(F.coalesce(F.col("text"), F.lit("")), r"\s+"), lambda x: x != "")))
    )  # fmt: skip
    return table


def _spark_suite() -> list[Any]:
    """The nlpflow suite's checks with Spark metrics (default validate params)."""
    from nlpflow.config.params import ValidateParams
    from nlpflow.data.suites.text_classification import build_checks

    pandas_only = {"encoding_damage", "script", "label_drift", "length_drift"}
    return [c for c in build_checks(ValidateParams()) if c.id not in pandas_only]


def child_spark(src: str, cores: int) -> dict[str, Any]:
    import great_expectations as gx
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # Spark's Python workers: this venv's Python
    start, cpu = time.perf_counter(), _tree_cpu()
    spark = (
        SparkSession.builder.master(f"local[{cores}]").appName("nlpflow-bench")
        .config("spark.driver.memory", "2g").config("spark.sql.shuffle.partitions", str(4 * cores))
        .config("spark.ui.enabled", "false").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    table = _spark_table(spark, Path(src)).cache()
    rows = table.count()
    built = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_spark("spark").add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all")
    )  # fmt: skip
    checks = _spark_suite()
    suite = context.suites.add(
        gx.ExpectationSuite(name="s", expectations=[c.expectation for c in checks])
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=batch, suite=suite)
    )
    labels = sorted(
        r["label"]
        for r in table.filter("split = 'train'").select("label").distinct().collect()
        if r["label"]
    )
    result = definition.run(
        batch_parameters={"dataframe": table}, expectation_parameters={"allowed_labels": labels},
        result_format={"result_format": "SUMMARY"},
    )  # fmt: skip
    done = time.perf_counter()
    used = _tree_cpu() - cpu
    counts = {
        (r.expectation_config.meta or {}).get("nlpflow_check"): int((r.result or {}).get("unexpected_count") or 0)
        for r in result.results
    }  # fmt: skip
    spark.stop()
    return {
        "rows": rows, "seconds": round(done - started, 2), "start_s": round(started - start, 2),
        "build_s": round(built - started, 2), "gx_s": round(done - built, 2),
        "rows_per_s": round(rows / (done - started)), "cpu_s": round(used, 2),
        "rows_per_cpu_s": round(rows / used), "checks": len(checks), "counts": counts,
        "success": bool(result.success),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--budget-mb", type=int, default=BUDGET_MB)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    src = make_splits(args.rows, CACHE / f"texts-{args.rows}")
    load = [round(x, 2) for x in os.getloadavg()]
    ours = measured(
        "validate", src=src, dst=str(CACHE / "spark-bench-ours"), budget_mb=args.budget_mb
    )
    spark = measured("spark", script=Path(__file__), src=src, cores=args.cores)
    ours_counts = _our_counts(CACHE / "spark-bench-ours")
    same = {
        k: (v, ours_counts.get(k)) for k, v in spark["counts"].items() if v != ours_counts.get(k)
    }
    out = {"rows": args.rows, "load_avg": load, "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "nlpflow_chunks": ours, "gx_spark": spark, "count_differences": same}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spark_validate.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"{args.rows:,} synthetic rows, load {load} before, {out['load_avg_after']} after\n")
    print("| contender | checks | seconds | rows/s | rows per CPU-s | peak RSS MB (tree) |")
    print("|---|---|---|---|---|---|")
    print(f"| nlpflow, GX on pandas chunks (max_memory_mb={args.budget_mb}) | 20 | {ours['seconds']} "
          f"| {ours['rows_per_s']:,} | {ours['rows_per_cpu_s']:,} | {ours['peak_rss_mb']:,} |")  # fmt: skip
    print(f"| GX Spark datasource, local[{args.cores}] (+{spark['start_s']} s to start Spark) "
          f"| {spark['checks']} | {spark['seconds']} | {spark['rows_per_s']:,} "
          f"| {spark['rows_per_cpu_s']:,} | {spark['peak_rss_mb']:,} |")  # fmt: skip
    print(
        f"\nSpark: {spark['build_s']} s building the table, {spark['gx_s']} s in GX; "
        f"unexpected counts that differ from nlpflow's: {same or 'none'}"
    )


def _our_counts(dst: Path) -> dict[str, int]:
    summary = json.loads((dst / "summary.json").read_text())
    return {c["id"]: c["unexpected_count"] for c in summary["checks"]}


def _child() -> None:
    task, kwargs = sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(globals()[f"child_{task}"](**kwargs)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child()
    else:
        main()
