"""Generation engines: choice and fallback, LoRA merge into GGUF, and llama.cpp vs the transformers reference.

    .venv/bin/python -m pytest tests/test_backend.py -x -q            # all (slow ones load SmolLM2-135M)
    .venv/bin/python -m pytest tests/test_backend.py -x -q -m "not slow"
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.inference import cpu_probe, engines, gguf_merge, llama_cpp_engine
from prompt_recovery.inference.recover import Recoverer
from prompt_recovery.scoring.suite import load_examples

needs_llama_cpp = pytest.mark.skipif(not cpu_probe.llama_cpp_available(), reason="llama-cpp-python not installed")


@pytest.fixture
def no_llama_cpp(monkeypatch):
    """Simulate an environment without llama-cpp-python: `import llama_cpp` raises ImportError."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert not cpu_probe.llama_cpp_available()


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("PROMPT_RECOVERY_THREADS", "1")  # CI machines are shared; see default_threads()
    monkeypatch.delenv("PROMPT_RECOVERY_GGUF_TYPE", raising=False)
    monkeypatch.delenv("PROMPT_RECOVERY_LLAMA_SEQS", raising=False)
    monkeypatch.delenv("PROMPT_RECOVERY_LLAMA_WORKERS", raising=False)


# ---------------------------------------------------------------- choosing a backend

def test_explicit_transformers_is_kept():
    assert engines.choose("transformers", "smollm2-135m") == "transformers"


def test_unknown_backend_is_a_user_error():
    with pytest.raises(UserError, match="unknown backend 'onnx'"):
        engines.choose("onnx", "smollm2-135m")


def test_auto_uses_transformers_for_non_gguf_models(capsys):
    assert engines.choose("auto", "tiny-random-llama") == "transformers"
    assert capsys.readouterr().err == ""  # nothing to tell: llama.cpp could not run it anyway


@needs_llama_cpp
def test_auto_picks_llama_cpp_for_the_gguf_preset_on_cpu():
    assert engines.choose("auto", "smollm2-135m", "cpu") == "llama-cpp"
    assert engines.choose("auto", "smollm2-135m", "cpu", "bfloat16") == "transformers"


def test_auto_falls_back_with_one_line_notice_when_engine_missing(no_llama_cpp, capsys):
    assert engines.choose("auto", "smollm2-135m", "cpu") == "transformers"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "llama-cpp-python is not installed" in err and "pip install" in err


def test_explicit_llama_cpp_without_engine_is_a_user_error(no_llama_cpp):
    with pytest.raises(UserError, match="needs llama-cpp-python"):
        engines.choose("llama-cpp", "smollm2-135m", "cpu")


def test_an_installed_llama_cpp_that_does_not_load_says_why(tmp_path, monkeypatch, capsys):
    """A broken install (here: its shared library is missing) is not reported as "not installed"."""
    pkg = tmp_path / "llama_cpp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('raise OSError("libllama.so: cannot open shared object file")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    assert cpu_probe.llama_cpp_problem() == "it does not load: OSError: libllama.so: cannot open shared object file"
    assert engines.choose("auto", "smollm2-135m", "cpu") == "transformers"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "installed but it does not load: OSError: libllama.so" in err
    with pytest.raises(UserError, match="cannot use llama-cpp-python, it does not load: OSError: libllama.so"):
        engines.choose("llama-cpp", "smollm2-135m", "cpu")


@needs_llama_cpp
def test_explicit_llama_cpp_needs_a_gguf_model():
    with pytest.raises(UserError, match="GGUF-backed"):
        Recoverer.load("tiny-random-llama", adapter="none", backend="llama-cpp")


def test_recoverer_with_tiny_model_uses_transformers_backend():
    r = Recoverer.load("tiny-random-llama", adapter="none", max_new_tokens=4, backend="auto")
    assert r.backend == "transformers" and "backend transformers" in r.describe()
    ids = r.prompt_ids("a b c", "c b a")
    out = r.generate_ids([ids, ids], batch_size=2)
    assert len(out) == 2 and out[0] == out[1]  # greedy: same prompt, same text


def test_auto_falls_back_when_the_fast_path_cannot_load(monkeypatch, capsys):
    def cannot(model, adapter):
        raise UserError("adapter x: DoRA is not supported by the llama-cpp backend; use --backend transformers")

    monkeypatch.setattr(engines, "choose", lambda *a: "llama-cpp")
    monkeypatch.setattr(engines, "load_llama_cpp", cannot)
    r = Recoverer.load("tiny-random-llama", adapter="none", max_new_tokens=2, backend="auto")
    assert r.backend == "transformers"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DoRA" in err and "falling back to the transformers backend" in err
    with pytest.raises(UserError, match="DoRA"):  # an explicit choice is not overridden
        Recoverer.load("tiny-random-llama", adapter="none", backend="llama-cpp")


# ---------------------------------------------------------------- LoRA deltas and the merged GGUF

def _tiny_adapter(tmp_path, targets=("q_proj", "k_proj", "v_proj", "o_proj", "down_proj")):
    import torch
    from peft import LoraConfig, get_peft_model

    from prompt_recovery.models import tiny_random

    base, _ = tiny_random("llama")
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    return peft_model, tmp_path / "adapter"


def test_read_lora_deltas_equal_peft_merge(tmp_path):
    import torch

    peft_model, path = _tiny_adapter(tmp_path)
    before = {n: p.detach().clone() for n, p in peft_model.base_model.model.named_parameters() if "lora" not in n}
    cfg, deltas = gguf_merge.read_lora(path)
    merged = dict(peft_model.merge_and_unload().named_parameters())
    assert len(deltas) == 2 * 5  # 2 layers x 5 target modules
    for layer in range(2):
        for hf, gg in [("self_attn.q_proj", "attn_q"), ("self_attn.o_proj", "attn_output"),
                       ("mlp.down_proj", "ffn_down")]:
            name = f"model.layers.{layer}.{hf}.weight"
            want = (merged[name] - before[name.replace(".weight", ".base_layer.weight")]).detach().numpy()
            got = deltas[f"blk.{layer}.{gg}.weight"]
            assert got.shape == want.shape and np.abs(want).max() > 1e-3
            np.testing.assert_allclose(got, want, atol=1e-5)
    with torch.no_grad():  # scale alpha/r = 2 is applied
        assert cfg["lora_alpha"] / cfg["r"] == 2


def test_permute_inverts_transformers_gguf_reverse_permutation():
    tp = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    w = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    reverse = getattr(tp, "LlamaTensorProcessor", None)  # what transformers does when it loads a Llama GGUF
    if reverse is None:
        pytest.skip("transformers has no LlamaTensorProcessor")
    for n_head, n_kv in [(3, 3), (3, 1)]:
        hf = reverse()._reverse_permute_weights(w, n_head, n_kv)
        assert not np.array_equal(hf, w)
        np.testing.assert_array_equal(gguf_merge._permute(hf, n_kv), w)


def _write_gguf(path, tensors: dict, n_head=2, n_kv=1):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    for name, (arr, qtype) in tensors.items():
        if qtype == gguf.GGMLQuantizationType.Q8_0:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_merged_gguf_adds_permuted_delta_and_is_cached(tmp_path, monkeypatch):
    import gguf
    from gguf.quants import dequantize

    rng = np.random.default_rng(0)
    q8 = gguf.GGMLQuantizationType.Q8_0
    f32 = gguf.GGMLQuantizationType.F32
    base_w = {"blk.0.attn_q.weight": (rng.standard_normal((64, 32)).astype(np.float32), q8),
              "blk.0.attn_k.weight": (rng.standard_normal((32, 32)).astype(np.float32), f32),
              "blk.0.attn_v.weight": (rng.standard_normal((32, 32)).astype(np.float32), q8),
              "blk.0.attn_norm.weight": (np.ones(32, dtype=np.float32), f32)}
    base = tmp_path / "base.gguf"
    _write_gguf(base, base_w)
    # a hand-made PEFT adapter for q and k with known A, B
    from safetensors.numpy import save_file

    ad = tmp_path / "ad"
    ad.mkdir()
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                        "target_modules": ["q_proj", "k_proj"], "bias": "none"}))
    A = {m: rng.standard_normal((2, 32)).astype(np.float32) for m in ("q_proj", "k_proj")}
    B = {"q_proj": rng.standard_normal((64, 2)).astype(np.float32),
         "k_proj": rng.standard_normal((32, 2)).astype(np.float32)}
    pre = "base_model.model.model.layers.0.self_attn"
    save_file({**{f"{pre}.{m}.lora_A.weight": A[m] for m in A}, **{f"{pre}.{m}.lora_B.weight": B[m] for m in B}},
              str(ad / "adapter_model.safetensors"))

    out = gguf_merge.merged_gguf(base, ad, cache_dir=tmp_path / "cache", weight_type="f32")
    reader = gguf.GGUFReader(str(out))
    got = {t.name: dequantize(t.data, t.tensor_type) for t in reader.tensors}
    assert {t.tensor_type for t in reader.tensors} == {f32}
    assert reader.get_field("llama.attention.head_count").contents() == 2
    src = {t.name: dequantize(t.data, t.tensor_type) for t in gguf.GGUFReader(str(base)).tensors}
    np.testing.assert_allclose(got["blk.0.attn_q.weight"],
                               src["blk.0.attn_q.weight"] + gguf_merge._permute(2.0 * B["q_proj"] @ A["q_proj"], 2),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["blk.0.attn_k.weight"],
                               src["blk.0.attn_k.weight"] + gguf_merge._permute(2.0 * B["k_proj"] @ A["k_proj"], 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got["blk.0.attn_v.weight"], src["blk.0.attn_v.weight"])  # untouched
    # cached: same file, not rewritten; a changed adapter gets a new file
    mtime = out.stat().st_mtime_ns
    assert gguf_merge.merged_gguf(base, ad, cache_dir=tmp_path / "cache", weight_type="f32") == out and out.stat().st_mtime_ns == mtime
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 2}))
    assert gguf_merge.merged_gguf(base, ad, cache_dir=tmp_path / "cache", weight_type="f32") != out
    assert not list((tmp_path / "cache").glob(".*tmp"))  # no temp files left behind


def test_merged_gguf_adds_the_embedding_delta_once_for_a_tied_output_layer(tmp_path):
    """An adapter with a LoRA embedding (extract-lora on a tied model): token_embd gets (B A)^T * scale; the
    tied output layer's LoRA (the same factors, transposed) adds nothing more; an untied one goes to output."""
    import gguf
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    f32 = gguf.GGMLQuantizationType.F32
    vocab, dim = 8, 32
    emb = rng.standard_normal((vocab, dim)).astype(np.float32)
    base = tmp_path / "tied.gguf"
    _write_gguf(base, {"token_embd.weight": (emb, gguf.GGMLQuantizationType.Q8_0),
                       "output_norm.weight": (np.ones(dim, dtype=np.float32), f32)})
    A, B = rng.standard_normal((2, vocab)).astype(np.float32), rng.standard_normal((dim, 2)).astype(np.float32)
    ad = tmp_path / "ad"
    ad.mkdir()
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 6, "bias": "none",
                                                        "target_modules": ["embed_tokens"],
                                                        "ensure_weight_tying": True}))
    save_file({"base_model.model.model.embed_tokens.lora_embedding_A": A,
               "base_model.model.model.embed_tokens.lora_embedding_B": B,
               "base_model.model.lm_head.lora_A.weight": np.ascontiguousarray(B.T),
               "base_model.model.lm_head.lora_B.weight": np.ascontiguousarray(A.T)}, str(ad / "adapter_model.safetensors"))
    out = gguf_merge.merged_gguf(base, ad, cache_dir=tmp_path / "cache", weight_type="f32")
    got = {t.name: dequantize(t.data, t.tensor_type) for t in gguf.GGUFReader(str(out)).tensors}
    src = {t.name: dequantize(t.data, t.tensor_type) for t in gguf.GGUFReader(str(base)).tensors}
    assert set(got) == {"token_embd.weight", "output_norm.weight"}
    np.testing.assert_allclose(got["token_embd.weight"], src["token_embd.weight"] + 3.0 * (B @ A).T, rtol=1e-5, atol=1e-5)
    # untied: the output layer's own LoRA is a delta of output.weight, which a tied GGUF does not have
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 6, "bias": "none",
                                                        "target_modules": ["embed_tokens", "lm_head"]}))
    _, deltas = gguf_merge.read_lora(ad)
    np.testing.assert_allclose(deltas["output.weight"], 3.0 * A.T @ B.T, rtol=1e-5)
    with pytest.raises(UserError, match="missing from tied.gguf: output.weight"):
        gguf_merge.merged_gguf(base, ad, cache_dir=tmp_path / "cache", weight_type="f32")


def test_unsupported_adapter_is_a_user_error(tmp_path):
    ad = tmp_path / "dora"
    ad.mkdir()
    (ad / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "use_dora": True}))
    with pytest.raises(UserError, match="DoRA is not supported by the llama-cpp backend"):
        gguf_merge.read_lora(ad)


# ---------------------------------------------------------------- the real default model (slow)

@pytest.fixture(scope="module")
def smollm2_adapter(tmp_path_factory):
    """A random, non-zero LoRA adapter for SmolLM2 on q/k/v (r=16), so that it really changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    from prompt_recovery.models import load_base

    base, _, _ = load_base("smollm2-135m", "cpu", "float32")
    torch.manual_seed(0)
    m = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"],
                                        init_lora_weights=False))
    path = tmp_path_factory.mktemp("smollm2-lora")
    m.save_pretrained(path)
    return str(path)


@pytest.mark.slow
@needs_llama_cpp
def test_llama_cpp_matches_reference_with_adapter(smollm2_adapter, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_merge, "gguf_cache_dir", lambda: tmp_path / "gguf")  # merged GGUFs: not in ~
    monkeypatch.setenv("PROMPT_RECOVERY_GGUF_TYPE", "f32")  # the reference's exact weights: same tokens
    pairs = [(r["original_text"], r["rewritten_text"]) for r in load_examples()[:3]]
    fast = Recoverer.load("smollm2-135m", adapter=smollm2_adapter, backend="llama-cpp", max_new_tokens=12)
    assert fast.backend == "llama-cpp" and fast.model is None
    assert list(tmp_path.glob("gguf/*.f32.gguf"))  # the merged file went to the cache
    ids = [fast.prompt_ids(o, r) for o, r in pairs]
    fast_raw = fast.generate_ids(ids, 1)
    base_raw = Recoverer.load("smollm2-135m", adapter="none", backend="llama-cpp",
                              max_new_tokens=12).generate_ids(ids, 1)
    ref = Recoverer.load("smollm2-135m", adapter=smollm2_adapter, backend="transformers", max_new_tokens=12)
    assert ref.prompt_ids(*pairs[0]) == ids[0]  # same prompt token ids on both paths
    ref_raw = ref.generate_ids(ids, 3)
    assert fast_raw == ref_raw  # same greedy text, token for token
    assert all(t.strip() for t in fast_raw)
    assert fast_raw != base_raw  # the adapter is applied on the fast path
    # continuous batching (3 prompts in flight, one decode call per step) = one prompt at a time
    single = llama_cpp_engine.LlamaCppBackend(fast.engine.gguf_file, fast.tokenizer, n_seq=1)
    assert fast.engine.n_seq == 16 and single.n_seq == 1 and len(fast.engine.workers) == 1
    assert single.generate(ids, 12) == fast_raw
    assert single.generate(ids[::-1], 12) == fast_raw[::-1]  # slots reused with cached prefixes: same again
    # two workers (two contexts on one model, each in its own thread, one shared queue) = the same
    multi = llama_cpp_engine.LlamaCppBackend(fast.engine.gguf_file, fast.tokenizer, n_threads=2, n_seq=2)
    assert len(multi.workers) == 2 and [w.n_threads for w in multi.workers] == [1, 1]
    assert multi.generate(ids * 3, 12) == fast_raw * 3
    multi.close()
    # a prompt longer than the per-sequence context grows it instead of failing
    long_prompt = ids[0][:-20] + (ids[1] * 20)[:1100] + ids[0][-20:]
    assert len(long_prompt) > fast.engine.n_ctx
    got = fast.engine.generate_tokens([long_prompt, ids[2]], 4)
    assert fast.engine.n_ctx >= len(long_prompt) + 4 and len(got[0]) >= 1
    assert got == single.generate_tokens([long_prompt, ids[2]], 4)
    single.close()



# ---------------------------------------------------------------- weight types of the merged GGUF

@pytest.mark.parametrize("qtype,ggml,file_type,tol", [
    ("f32", "F32", "ALL_F32", 1e-6), ("f16", "F16", "MOSTLY_F16", 1e-3),
    ("bf16", "BF16", "MOSTLY_BF16", 8e-3), ("q8_0", "Q8_0", "MOSTLY_Q8_0", 1.5e-2)])
def test_merged_gguf_weight_types(tmp_path, qtype, ggml, file_type, tol):
    import gguf
    from gguf.quants import dequantize

    T = gguf.GGMLQuantizationType
    rng = np.random.default_rng(0)
    base_w = {"blk.0.attn_q.weight": (rng.standard_normal((64, 32)).astype(np.float32), T.Q8_0),
              "blk.0.ffn_down.weight": (rng.standard_normal((32, 64)).astype(np.float32), T.F32),
              "blk.0.odd.weight": (rng.standard_normal((4, 20)).astype(np.float32), T.F32),  # 20 % 32 != 0
              "blk.0.attn_norm.weight": (rng.uniform(0.5, 1.5, 32).astype(np.float32), T.F32),
              "token_embd.weight": (rng.standard_normal((10, 32)).astype(np.float32), T.Q8_0)}
    base = tmp_path / "base.gguf"
    _write_gguf(base, base_w)
    f32 = gguf_merge.merged_gguf(base, None, cache_dir=tmp_path / "cache", weight_type="f32")
    out = gguf_merge.merged_gguf(base, None, cache_dir=tmp_path / "cache", weight_type=qtype)
    assert out.name.endswith(f".{qtype}.gguf") and (out == f32) == (qtype == "f32")
    reader = gguf.GGUFReader(str(out))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == types["blk.0.ffn_down.weight"] == ggml
    assert types["blk.0.attn_norm.weight"] == "F32"  # norms stay float32
    assert types["token_embd.weight"] == "F32"  # so does the (tied) output head
    assert types["blk.0.odd.weight"] == ("F32" if qtype == "q8_0" else ggml)  # Q8_0 needs rows of 32k
    assert reader.get_field("general.file_type").contents() == int(getattr(gguf.LlamaFileType, file_type))
    ref = {t.name: dequantize(t.data, t.tensor_type) for t in gguf.GGUFReader(str(f32)).tensors}
    for t in reader.tensors:
        got = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(ref[t.name].shape)
        np.testing.assert_allclose(got, ref[t.name], rtol=tol, atol=tol * np.abs(ref[t.name]).max())
        if qtype != "f32" and t.name == "blk.0.ffn_down.weight":  # (Q8_0 -> Q8_0 is lossless: not this one)
            assert not np.array_equal(got, ref[t.name])  # really stored in the lower precision


def test_gguf_type_from_option_or_environment(monkeypatch):
    monkeypatch.delenv("PROMPT_RECOVERY_GGUF_TYPE", raising=False)
    assert gguf_merge.gguf_type() == gguf_merge.default_gguf_type()
    monkeypatch.setattr(cpu_probe, "llama_cpp_has_blas", lambda: True)
    assert gguf_merge.gguf_type() == "f32"  # OpenBLAS's float32 GEMM: the reference's exact weights
    monkeypatch.setattr(cpu_probe, "llama_cpp_has_blas", lambda: False)
    assert gguf_merge.gguf_type() == "f16"  # llama.cpp's own kernels: f16 is the fastest that keeps answers
    monkeypatch.setenv("PROMPT_RECOVERY_GGUF_TYPE", "Q8-0")
    assert gguf_merge.gguf_type() == "q8_0"
    assert gguf_merge.gguf_type("f16") == "f16"  # an explicit value wins
    monkeypatch.setenv("PROMPT_RECOVERY_GGUF_TYPE", "q4_k")
    with pytest.raises(UserError, match="unknown GGUF weight type 'q4_k'.*f32, f16, bf16, q8_0"):
        gguf_merge.gguf_type()


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    monkeypatch.delenv("PROMPT_RECOVERY_THREADS")
    monkeypatch.setattr(cpu_probe.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for busy, want in [(0.0, 4), (1.4, 3), (2.6, 1), (3.9, 1), (9.0, 1)]:
        monkeypatch.setattr(cpu_probe, "_busy_cores", lambda busy=busy: busy)
        assert cpu_probe.default_threads() == want
    monkeypatch.setenv("PROMPT_RECOVERY_THREADS", "3")
    assert cpu_probe.default_threads() == 3


def test_busy_cores_sees_a_spinning_process():
    import multiprocessing as mp
    import time

    if not hasattr(cpu_probe.os, "sched_getaffinity") or not cpu_probe.os.path.exists("/proc/stat"):
        pytest.skip("needs Linux /proc/stat")
    quiet = cpu_probe._busy_cores(0.3)
    if quiet > (cpu_probe.os.cpu_count() or 1) - 1:
        pytest.skip(f"no idle core to see a spinning process on ({quiet:.1f} busy already)")
    p = mp.get_context("spawn").Process(target=_spin, args=(3.0,))
    p.start()
    try:
        time.sleep(1.0)  # the child is up and spinning
        assert cpu_probe._busy_cores(0.5) >= quiet + 0.6  # one more core busy (other jobs may come and go)
    finally:
        p.terminate()
        p.join()


def _spin(seconds):
    import time

    end = time.time() + seconds
    while time.time() < end:
        pass


def test_worker_plan_one_thread_each_with_openblas(monkeypatch):
    monkeypatch.delenv("PROMPT_RECOVERY_LLAMA_WORKERS", raising=False)
    assert llama_cpp_engine.plan_workers(2, blas=True) == (2, 2)
    assert llama_cpp_engine.plan_workers(1, blas=True) == (1, 1)
    assert llama_cpp_engine.plan_workers(32, blas=True) == (llama_cpp_engine.MAX_WORKERS, llama_cpp_engine.MAX_WORKERS)  # capped
    assert llama_cpp_engine.plan_workers(32, blas=False) == (32, llama_cpp_engine.MAX_WORKERS)  # threads split between them
    assert llama_cpp_engine.plan_workers(4, workers=1, blas=True) == (4, 1)  # explicit: one worker, 4 threads
    assert llama_cpp_engine.plan_workers(2, workers=5) == (2, 2)  # never more workers than threads
    monkeypatch.setenv("PROMPT_RECOVERY_LLAMA_WORKERS", "3")
    assert llama_cpp_engine.plan_workers(6, blas=True) == (6, 3)
    # the KV cache is shared out: many workers get fewer cells (and so fewer prompts in flight) each
    assert llama_cpp_engine.KV_CELLS // llama_cpp_engine.MAX_WORKERS >= llama_cpp_engine.MIN_WORKER_CELLS


def test_openblas_kernels_follow_cpu_flags_unless_set(monkeypatch):
    monkeypatch.delenv("PROMPT_RECOVERY_OPENBLAS_CORETYPE", raising=False)
    avx512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}
    monkeypatch.setattr(cpu_probe, "_cpu_flags", lambda: avx512)
    assert cpu_probe.openblas_coretype() == "SkylakeX"
    monkeypatch.setattr(cpu_probe, "_cpu_flags", lambda: avx512 - {"avx512bw"})
    assert cpu_probe.openblas_coretype() is None  # OpenBLAS's own detection
    monkeypatch.setenv("PROMPT_RECOVERY_OPENBLAS_CORETYPE", "Zen")
    assert cpu_probe.openblas_coretype() == "Zen"


class _FakeWorker:
    """Stands in for a llama.cpp context: 'generates' [i, i] for prompt i, one prompt per take()."""

    def __init__(self, fail_at=None):
        self.fail_at, self.took, self.needed = fail_at, [], 0

    def fit(self, need):
        self.needed = need

    def run(self, ids, take, out, max_new_tokens, done, stop):
        import time

        while not stop.is_set() and (group := take()) is not None:
            for i in group:
                if i == self.fail_at:
                    raise UserError(f"worker failed on {i}")
                self.took.append(i)
                out[i].extend([i] * max_new_tokens)
                done(i)
            time.sleep(0.001)  # let the other worker take some


def _fake_engine(workers):
    engine = llama_cpp_engine.LlamaCppBackend.__new__(llama_cpp_engine.LlamaCppBackend)
    engine.workers = workers
    engine.model = type("M", (), {"n_ctx_train": lambda self: 64})()
    return engine


def test_workers_share_one_queue_each_prompt_once_in_order():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    ws, bar = [_FakeWorker(), _FakeWorker()], Bar()
    engine = _fake_engine(ws)
    ids = [[7] * (3 + i % 5) for i in range(40)]
    assert engine.generate_tokens(ids, 2, bar) == [[i, i] for i in range(40)]
    assert sorted(ws[0].took + ws[1].took) == list(range(40))  # each prompt once, none dropped
    assert ws[0].took and ws[1].took  # both workers took part
    assert bar.n == 40 and ws[0].needed == ws[1].needed == 7 + 2
    assert _fake_engine([_FakeWorker(), _FakeWorker()]).generate_tokens(ids[:1], 2) == [[0, 0]]
    with pytest.raises(UserError, match="exceeds the model's context of 64"):
        engine.generate_tokens([[1] * 60], 8)


def test_prefix_groups_put_prompts_with_a_shared_original_together():
    system = [1, 2, 3, 4]  # shared by every prompt: not enough to group
    a, b = list(range(100, 160)), list(range(200, 260))  # two long "original texts"
    ids = [system + a + [7, 8], system + b + [9], system + [5, 6], system + a + [7, 9, 9],
           system + b + [1], system + a + [3], system + [5, 6, 7]]
    groups = llama_cpp_engine.prefix_groups(ids, min_shared=32)
    assert groups == [[0, 3, 5], [1, 4], [2], [6]]
    assert sorted(i for g in groups for i in g) == list(range(len(ids)))  # each prompt exactly once
    assert llama_cpp_engine.prefix_groups(ids, min_shared=1000) == [[i] for i in range(len(ids))]
    assert llama_cpp_engine.prefix_groups([]) == [] and llama_cpp_engine.prefix_groups([[1]]) == [[0]]
    assert llama_cpp_engine.prefix_groups([[5, 6]] * 3, min_shared=1) == [[0, 1, 2]]  # identical prompts


def test_a_failing_worker_stops_the_others_and_raises():
    ws = [_FakeWorker(fail_at=5), _FakeWorker(fail_at=5)]
    with pytest.raises(UserError, match="worker failed on 5"):
        _fake_engine(ws).generate_tokens([[1]] * 500, 1)
    assert len(ws[0].took) + len(ws[1].took) < 499  # the other worker stopped early


def test_vllm_backend_is_a_clear_error_without_vllm_or_gpu():
    import importlib.util

    import torch

    from prompt_recovery import Recoverer
    from prompt_recovery.errors import UserError

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vllm and a GPU are present")
    with pytest.raises(UserError, match=r"vllm backend needs (the vllm package|a CUDA GPU)"):
        Recoverer.load("tiny-random-mistral", adapter="none", backend="vllm")


@pytest.mark.gpu
def test_vllm_matches_transformers_on_gpu(tmp_path):
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None:
        pytest.skip("needs a CUDA GPU and the vllm package")
    from prompt_recovery import Recoverer, models

    m, tok = models.tiny_random("mistral")
    m.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    pairs = [("The cat sat.", "Arr, the cat be sittin."), ("We meet at noon.", "Meeting: 12:00.")]
    ref = Recoverer.load(str(tmp_path / "m"), adapter="none", backend="transformers", dtype="float32",
                         max_new_tokens=8)
    fast = Recoverer.load(str(tmp_path / "m"), adapter="none", backend="vllm", dtype="float32", max_new_tokens=8)
    ids = [ref.prompt_ids(o, r) for o, r in pairs]
    assert fast.backend == "vllm" and fast.prompt_ids(*pairs[0]) == ids[0]  # same prompt format and tokens
    assert fast.generate_ids(ids, 2) == ref.generate_ids(ids, 2)  # greedy fp32 on both engines
