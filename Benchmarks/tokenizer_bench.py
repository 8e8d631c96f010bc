"""Tokenizer benchmark, Python / Rust side (the Hugging Face `tokenizers` library).

  python3 Benchmarks/tokenizer_bench.py prepare DIR [--mb 4]   # corpus.txt + three trained tokenizer.json files
  python3 Benchmarks/tokenizer_bench.py bench DIR [--runs 5]   # JSON lines: encode MB/s per family, load ms

`prepare` writes DIR/corpus.txt (the deterministic generator below; `tokenizer-bench --generate` writes the
same bytes) and trains, on that corpus, a WordPiece (BERT-style), a byte-level BPE (GPT-2-style) and a
Unigram (Metaspace) tokenizer with a 30k vocabulary: DIR/wordpiece.json, DIR/bpe.json, DIR/unigram.json.

`bench` times `Tokenizer.encode_batch` over all lines of the corpus on one thread (TOKENIZERS_PARALLELISM=false
and RAYON_NUM_THREADS=1 are set before the library is imported; the process's CPU time over wall time is
printed as `cpu_per_wall` to show that only one core worked) and `Tokenizer.from_file`; each figure is the
median of --runs runs after one warm-up run (`mb_per_cpu_s`, `load_cpu_ms`: the same in thread CPU time;
`ids_checksum`: a hash of all ids in order). The Swift side is Sources/TokenizerBench (same fields).

  python3 Benchmarks/tokenizer_bench.py corpus [--mb 4] > corpus.txt   # the corpus alone
"""
import argparse, json, os, statistics, sys, time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"

FAMILIES = ("wordpiece", "bpe", "unigram")

# ---------------------------------------------------------------------------------------------------------
# Corpus generator. Integer-only, driven by splitmix64, so that Sources/TokenizerBench/Corpus.swift
# reproduces it byte for byte. Keep the two in sync.

COMMON = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out up who them "
    "some about into than its time only could new these two may first then do any like my now over such our man "
    "me even most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long get "
    "here between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three small large system water number house part government during "
    "without place around however school every within information development while public report research"
).split()
SYLLABLES = (
    "ka ri to ne mu sa lo be di fa ge hi jo ku la me no pe qua re si tu ve wa xi yo ze an en in on un ar er ir or "
    "ur al el il ol ul ment tion ing ed er ly est ness able ful less ous ive ize ship hood ward wise pre pro con "
    "dis re un sub super inter trans ex co de th st tr pl gr bl cr fl sh ch"
).split()
ACCENTED = (
    "café naïve résumé Zürich São Paulo fiancée déjà vu Ångström Málaga Kraków façade crème brûlée piñata "
    "jalapeño Öresund über Mädchen coöperate élan señor Dvořák Łódź Ærø"
).split()
CJK = ("日本語", "東京", "中文", "北京大学", "漢字", "こんにちは", "ありがとう", "한국어", "서울", "台北", "学生", "电脑")
EMOJI = ("😀", "🚀", "👍", "👍🏽", "🎉", "❤️", "🔥", "🤖", "🌍", "✨", "👩‍💻", "🇫🇷")
SENT_END = (".", ".", ".", ".", "!", "?", ";", "...")
MASK64 = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def skewed(self, n):
        """An index in [0, n) that favours small ones (roughly Zipf-like)."""
        return self.below(self.below(n) + 1)


def word(r):
    k = r.below(1000)
    if k < 560:
        return COMMON[r.skewed(len(COMMON))]
    if k < 820:
        return "".join(SYLLABLES[r.skewed(len(SYLLABLES))] for _ in range(1 + r.below(4)))
    if k < 880:
        f = r.below(5)
        if f == 0:
            return str(r.below(100))
        if f == 1:
            return str(1900 + r.below(130))
        if f == 2:
            return f"{r.below(1000)}.{r.below(100)}"
        if f == 3:
            return f"{r.below(100)}%"
        return f"{r.below(1000)},{r.below(900) + 100}"
    if k < 915:
        return ACCENTED[r.below(len(ACCENTED))]
    if k < 935:
        return CJK[r.below(len(CJK))]
    if k < 950:
        return EMOJI[r.below(len(EMOJI))]
    f = r.below(4)
    a = COMMON[r.skewed(len(COMMON))]
    if f == 0:
        return a + ("'s", "'t", "'re", "'ll", "'ve", "'d")[r.below(6)]
    if f == 1:
        return a + "-" + COMMON[r.skewed(len(COMMON))]
    if f == 2:
        return '"' + a + '"'
    return "(" + a + ")"


def sentence(r):
    words = []
    for i in range(5 + r.below(21)):
        w = word(r)
        if i == 0 and "a" <= w[0] <= "z":
            w = w[0].upper() + w[1:]
        if r.below(100) < 7:
            w += ("," if r.below(3) else ":")
        words.append(w)
    return " ".join(words) + SENT_END[r.below(len(SENT_END))]


def generate_corpus(target_bytes, seed=20240611):
    r = Rng(seed)
    lines, size = [], 0
    while size < target_bytes:
        line = " ".join(sentence(r) for _ in range(1 + r.below(4)))
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------

def prepare(d, mb):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    os.makedirs(d, exist_ok=True)
    corpus = os.path.join(d, "corpus.txt")
    text = generate_corpus(int(mb * 1_000_000))
    with open(corpus, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    files = [corpus]

    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp.train(files, trainers.WordPieceTrainer(vocab_size=30000, special_tokens=specials, show_progress=False))
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))])
    wp.decoder = decoders.WordPiece()
    wp.save(os.path.join(d, "wordpiece.json"))

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train(files, trainers.BpeTrainer(vocab_size=30000, special_tokens=["<|endoftext|>"], show_progress=False,
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.post_processor = processors.ByteLevel(trim_offsets=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.save(os.path.join(d, "bpe.json"))

    uni = Tokenizer(models.Unigram())
    uni.normalizer = normalizers.NFKC()
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train(files, trainers.UnigramTrainer(vocab_size=30000, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
                                             unk_token="<unk>", show_progress=False))
    uni.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", uni.token_to_id("</s>"))])
    uni.decoder = decoders.Metaspace()
    uni.save(os.path.join(d, "unigram.json"))

    for fam in FAMILIES:
        t = Tokenizer.from_file(os.path.join(d, fam + ".json"))
        print(json.dumps({"family": fam, "vocab_size": t.get_vocab_size()}))
    print(json.dumps({"corpus": corpus, "bytes": len(text.encode()), "lines": text.count("\n")}))


def timed(fn, runs):
    """Calls fn runs + 1 times (the first is the warm-up); returns its last result, wall and thread-CPU seconds."""
    walls, cpus, result = [], [], None
    for _ in range(runs + 1):
        result = None  # the previous result is freed before the next call, not during it
        t0, tc0 = time.perf_counter(), time.thread_time()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.thread_time() - tc0)
    return result, walls, cpus


def bench(d, runs, families):
    import tokenizers
    from tokenizers import Tokenizer
    with open(os.path.join(d, "corpus.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    nbytes = sum(len(l.encode()) for l in lines)
    for fam in families:
        path = os.path.join(d, fam + ".json")
        tok, loads, loads_cpu = timed(lambda: Tokenizer.from_file(path), runs)
        c0, w0 = time.process_time(), time.perf_counter()
        encs, times, times_cpu = timed(lambda: tok.encode_batch(lines), runs)
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0)
        ntok, checksum = 0, 0  # of all ids in order, to check that both libraries agree
        for e in encs:
            ntok += len(e.ids)
            for x in e.ids:
                checksum = (checksum * 1000003 + x + 1) & MASK64
        del encs
        enc = statistics.median(times[1:])
        print(json.dumps({"impl": "rust", "version": tokenizers.__version__, "family": fam, "lines": len(lines),
                          "bytes": nbytes, "tokens": ntok, "ids_checksum": checksum, "encode_s": round(enc, 4),
                          "mb_per_s": round(nbytes / enc / 1e6, 3), "load_ms": round(statistics.median(loads[1:]) * 1e3, 2),
                          "cpu_per_wall": round(cpu, 2), "mb_per_cpu_s": round(nbytes / statistics.median(times_cpu[1:]) / 1e6, 3),
                          "load_cpu_ms": round(statistics.median(loads_cpu[1:]) * 1e3, 2)}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["prepare", "bench", "corpus"])
    ap.add_argument("dir", nargs="?", default=".")
    ap.add_argument("--mb", type=float, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--families", default=",".join(FAMILIES))
    a = ap.parse_args()
    if a.command == "prepare":
        prepare(a.dir, a.mb)
    elif a.command == "corpus":
        sys.stdout.buffer.write(generate_corpus(int(a.mb * 1_000_000)).encode())
    else:
        bench(a.dir, a.runs, a.families.split(","))
