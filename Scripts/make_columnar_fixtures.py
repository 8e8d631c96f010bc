"""Writes the Parquet / Arrow / `datasets` fixtures of Tests/ColumnarTests/Fixtures and expected.json.

Run by hand from the package root: python3 Scripts/make_columnar_fixtures.py
Needs pyarrow and datasets. Every file holds a text column; expected.json maps each file (or directory) to the
column read and its values in order (null for a null row), as the Swift readers must give them.
"""

import json
import os
import random
import shutil

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ColumnarTests", "Fixtures")

WORDS = ["the", "model", "expert", "router", "token", "layer", "café", "naïve", "Ångström", "señor", "über",
         "東京", "数据集", "こんにちは", "한국어", "😀", "🚀✨", "Привет", "مرحبا", "x", "a,b", "\"quoted\"", "tab\there"]


def texts(seed, n, nulls=True, repeats=False):
    rng = random.Random(seed)
    pool = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(8)]
    out = []
    for i in range(n):
        r = rng.random()
        if nulls and r < 0.12:
            out.append(None)
        elif r < 0.18:
            out.append("")
        elif r < 0.21:
            out.append("   ")
        elif repeats and r < 0.7:
            out.append(rng.choice(pool))
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) + f" #{i}")
    if n > 5:  # every file holds a multi-line text, an empty string, a null (when nullable) and unicode
        out[1] = "line one\nline two"
        out[2] = ""
        out[3] = None if nulls else "not null"
        out[4] = f"café 東京 😀 Привет #{seed}"
    return out


def table(values, string_type=pa.string(), extra=True):
    columns = {"id": pa.array(range(len(values)), pa.int64())}
    columns["text"] = pa.array(values, string_type)
    if extra:
        columns["score"] = pa.array([float(i) / 3 for i in range(len(values))], pa.float64())
    return pa.table(columns)


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    expected = {}

    def parquet(name, values, column="text", **kwargs):
        pq.write_table(table(values, kwargs.pop("string_type", pa.string())), os.path.join(OUT, name), **kwargs)
        expected[name] = {"column": column, "values": values}

    parquet("plain_v1_none.parquet", texts(1, 40), use_dictionary=False, data_page_version="1.0",
            compression="none", row_group_size=9)
    parquet("dict_v1_snappy.parquet", texts(2, 60, repeats=True), use_dictionary=True, data_page_version="1.0",
            compression="snappy", row_group_size=25)
    parquet("dict_v2_snappy.parquet", texts(3, 60, repeats=True), use_dictionary=True, data_page_version="2.0",
            compression="snappy", row_group_size=20)
    parquet("plain_v2_gzip.parquet", texts(4, 50), use_dictionary=False, data_page_version="2.0",
            compression="gzip", row_group_size=16)
    parquet("dict_v1_gzip.parquet", texts(5, 50, repeats=True), use_dictionary=True, data_page_version="1.0",
            compression="gzip", row_group_size=50)
    parquet("dict_v2_zstd.parquet", texts(6, 70, repeats=True), use_dictionary=True, data_page_version="2.0",
            compression="zstd", row_group_size=30)
    parquet("plain_v1_zstd.parquet", texts(7, 30), use_dictionary=False, data_page_version="1.0",
            compression="zstd")
    parquet("dict_v2_lz4.parquet", texts(15, 40, repeats=True), use_dictionary=True, data_page_version="2.0",
            compression="lz4", row_group_size=20)
    # A codec the reader refuses by name.
    pq.write_table(table(texts(16, 10)), os.path.join(OUT, "brotli.parquet.unsupported"), compression="brotli")
    parquet("large_string.parquet", texts(8, 30), string_type=pa.large_string(), compression="snappy",
            row_group_size=12)
    # Many small pages per column chunk, and a dictionary that overflows into plain pages.
    parquet("small_pages.parquet", texts(9, 120, repeats=True), use_dictionary=True, data_page_size=128,
            dictionary_pagesize_limit=64, write_batch_size=8, compression="snappy", row_group_size=60)
    parquet("delta_v2_zstd.parquet", texts(12, 50, repeats=True), use_dictionary=False, data_page_version="2.0",
            column_encoding={"text": "DELTA_BYTE_ARRAY", "id": "PLAIN", "score": "PLAIN"}, compression="zstd",
            row_group_size=20)
    parquet("delta_length_v1_gzip.parquet", texts(13, 50), use_dictionary=False, data_page_version="1.0",
            column_encoding={"text": "DELTA_LENGTH_BYTE_ARRAY", "id": "PLAIN", "score": "PLAIN"}, compression="gzip",
            row_group_size=20)
    # Required (non-nullable) column: no definition levels.
    required = [t if t is not None else "filled" for t in texts(10, 25, nulls=False)]
    schema = pa.schema([pa.field("text", pa.string(), nullable=False), pa.field("id", pa.int32())])
    pq.write_table(pa.table({"text": required, "id": list(range(25))}, schema=schema),
                   os.path.join(OUT, "required.parquet"), row_group_size=10)
    expected["required.parquet"] = {"column": "text", "values": required}
    # A text inside an optional struct: definition levels of depth 2 (null struct, null text).
    nested_values = texts(11, 30)
    rng = random.Random(11)
    meta = [None if rng.random() < 0.15 else {"text": v, "n": i} for i, v in enumerate(nested_values)]
    nested_table = pa.table({"id": list(range(30)), "meta": pa.array(meta, pa.struct([("text", pa.string()), ("n", pa.int64())]))})
    pq.write_table(nested_table, os.path.join(OUT, "nested.parquet"), row_group_size=11, compression="snappy")
    expected["nested.parquet"] = {"column": "meta.text", "values": [None if m is None else m["text"] for m in meta]}

    # A directory of shards, each with several row groups.
    os.makedirs(os.path.join(OUT, "shards"))
    shard_values = []
    for i in range(3):
        values = texts(20 + i, 23)
        pq.write_table(table(values), os.path.join(OUT, "shards", f"train-{i:05d}-of-00003.parquet"),
                       row_group_size=8, compression=["snappy", "zstd", "none"][i])
        shard_values += values
    expected["shards"] = {"column": "text", "values": shard_values}

    # Text after columns of other shapes (lists, groups), with page checksums and a page index.
    mixed_values = texts(14, 40)
    rng = random.Random(14)
    mixed = pa.table({
        "tags": pa.array([[rng.choice(WORDS) for _ in range(rng.randint(0, 3))] for _ in range(40)], pa.list_(pa.string())),
        "meta": pa.array([{"n": i, "s": str(i)} for i in range(40)], pa.struct([("n", pa.int32()), ("s", pa.string())])),
        "text": pa.array(mixed_values, pa.string()),
    })
    pq.write_table(mixed, os.path.join(OUT, "mixed.parquet"), row_group_size=15, compression="snappy",
                   write_page_checksum=True, write_page_index=True)
    expected["mixed.parquet"] = {"column": "text", "values": mixed_values}

    # Arrow IPC: the file format and the stream format, several record batches, compressed bodies.
    def arrow(name, values, stream, compression=None, string_type=pa.string(), chunk=7):
        t = table(values, string_type)
        options = ipc.IpcWriteOptions(compression=compression)
        path = os.path.join(OUT, name)
        with pa.OSFile(path, "wb") as sink:
            writer = ipc.new_stream(sink, t.schema, options=options) if stream else ipc.new_file(sink, t.schema, options=options)
            for batch in t.to_batches(max_chunksize=chunk):
                writer.write_batch(batch)
            writer.close()
        expected[name] = {"column": "text", "values": values}

    arrow("ipc_file.arrow", texts(30, 33), stream=False)
    arrow("ipc_stream.arrow", texts(31, 33), stream=True)
    arrow("ipc_file_zstd.arrow", texts(32, 40), stream=False, compression="zstd")
    arrow("ipc_stream_lz4.arrow", texts(33, 40), stream=True, compression="lz4")
    arrow("ipc_large_utf8.arrow", texts(34, 29), stream=True, string_type=pa.large_string(), chunk=10)
    arrow("ipc_string_view.arrow", texts(35, 29), stream=False, string_type=pa.string_view(), chunk=10)

    # Text after fields of every buffer layout: the reader must count the nodes and buffers before it.
    view_values = texts(36, 24)
    rng = random.Random(36)
    n = len(view_values)
    mixed_arrow = pa.table({
        "flag": pa.array([i % 3 == 0 for i in range(n)]),
        "meta": pa.array([{"n": i, "s": str(i)} for i in range(n)], pa.struct([("n", pa.int32()), ("s", pa.string())])),
        "tags": pa.array([[rng.choice(WORDS)] * (i % 3) for i in range(n)], pa.list_(pa.string())),
        "big": pa.array([[i] * (i % 2) for i in range(n)], pa.large_list(pa.int64())),
        "fixed": pa.array([[i, i] for i in range(n)], pa.list_(pa.int16(), 2)),
        "category": pa.array([rng.choice(["a", "b", "c"]) for _ in range(n)]).dictionary_encode(),
        "view": pa.array([rng.choice(WORDS) * (1 + i % 5) for i in range(n)], pa.string_view()),
        "nothing": pa.nulls(n),
        "bytes": pa.array([bytes([i]) * i for i in range(n)], pa.binary()),
        "when": pa.array(list(range(n)), pa.timestamp("ms")),
        "text": pa.array(view_values, pa.string()),
    })
    path = os.path.join(OUT, "ipc_mixed.arrow")
    with pa.OSFile(path, "wb") as sink:
        with ipc.new_stream(sink, mixed_arrow.schema) as writer:
            for batch in mixed_arrow.to_batches(max_chunksize=9):
                writer.write_batch(batch)
    expected["ipc_mixed.arrow"] = {"column": "text", "values": view_values}

    # `datasets.save_to_disk`: a Dataset (two data-*.arrow shards) and a DatasetDict (train and validation).
    import datasets

    ds_values = texts(40, 45)
    datasets.Dataset.from_dict({"text": ds_values, "label": list(range(45))}).save_to_disk(
        os.path.join(OUT, "saved_dataset"), num_shards=2)
    expected["saved_dataset"] = {"column": "text", "values": ds_values}
    train, validation = texts(41, 30), texts(42, 12)
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": train}),
        "validation": datasets.Dataset.from_dict({"text": validation}),
    }).save_to_disk(os.path.join(OUT, "saved_dataset_dict"))
    expected["saved_dataset_dict"] = {"column": "text", "values": train, "splits": {"train": train, "validation": validation}}

    with open(os.path.join(OUT, "not_parquet.parquet"), "w") as f:
        f.write("this is a text file\nwith a .parquet name\n")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    total = 0
    for root, _, files in os.walk(OUT):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    print(f"wrote {len(expected)} fixtures, {total} bytes")


if __name__ == "__main__":
    main()
