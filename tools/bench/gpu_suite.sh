#!/usr/bin/env bash
# Everything CI cannot run, in one go on an NVIDIA GPU: the tests that skip without
# tensor cores or NCCL, then the benches whose figures RESULTS.md waits for. CI's PoCL
# runs the tensor-core kernels only emulated (gemm.emulated_tensor_cores), so a change
# to them is done once this has run on the real thing.
#
#   NETCL_DEVICE=gpu bash tools/bench/gpu_suite.sh            # every stage; one stage fits a 10-minute call
#   NETCL_DEVICE=gpu bash tools/bench/gpu_suite.sh tests conv  # named stages only
#   STAGE_LIMIT=200 LOG_DIR=$OUT bash tools/bench/gpu_suite.sh tests optim  # several in one call,
#       each stage's output also written to LOG_DIR/NAME.log
#
# Each stage prints its own ratios against torch, timed in the same run; a stage that
# fails or runs past its limit is reported and the next one starts.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NETCL_DEVICE="${NETCL_DEVICE:-gpu}"

tests() {
    # One pytest per package directory: each has its own conftest.py, which its tests
    # import by name.
    local failed=0
    python -m pytest -q -rs tests/netcl-tensor/test_matmul_tensor_cores.py \
        tests/netcl-tensor/test_conv_tensor_cores.py tests/netcl-tensor/test_reduce.py || failed=1
    python -m pytest -q -rs tests/netcl-autograd/test_ag_attention.py \
        tests/netcl-autograd/test_attention_tensor_cores.py || failed=1
    python -m pytest -q -rs tests/netcl-distributed/test_nccl.py \
        tests/netcl-distributed/test_nccl_ordering.py || failed=1
    python -m pytest -q -rs tests/netcl-optim/test_optim_muon.py \
        tests/netcl-optim/test_optim_adam8bit.py || failed=1
    return $failed
}
reduce() { python tools/bench/reduce_gpt.py --profile; }
steps() {
    python tools/bench/train_step.py --device gpu --steps-only --only "GPT 6" --rounds 5 \
        --step-sample 0.2
    python tools/bench/train_step.py --device gpu --steps-only --only ResNet-18 --rounds 5 \
        --step-sample 0.2
}
profile() {
    python tools/bench/kernel_profile.py --device gpu --model gpt6 --jit --steps 3 --by-size | head -40
    python tools/bench/kernel_profile.py --device gpu --model resnet18 --jit --steps 3 --by-size | head -40
}
optim() { python tools/bench/optim_step.py --algorithms adam,adam8bit,muon,adafactor --repeats 5 --steps 20; }
# Issue 35's 8-bit step: every kernel form beside fp32 Adam, then host cost and flushing.
adam8bit() { python tools/bench/adam8bit_forms.py; }
conv() { python tools/bench/conv_tensor_cores.py; }
# The opt-in convolution choices (conv_options.ConvOptions) against today's and cuDNN.
conv_variants() { python tools/bench/conv_tensor_cores.py --dtype bfloat16 --variants; }
attention() { python tools/bench/attention_sweep.py; }
attention16() {
    python tools/bench/attention_mma_sweep.py
    python tools/bench/attention_mma_sweep.py --dtype fp16
}
# The opt-in bf16 SDPA paths (one-pass backward, pipelined walks) on the hardware, then
# timed beside today's (issue 29).
attention16_one_pass() {
    local failed=0
    python -m pytest -q -rs tests/netcl-autograd/test_attention_tensor_cores.py \
        -k "one_pass or pipelined" || failed=1
    python tools/bench/attention_mma_sweep.py --one-pass || failed=1
    return $failed
}
matmul() { python tools/bench/matmul_mma_sweep.py --dtype float16 bfloat16 float32; }
# Issue 29's steps, a stage a model: sweep the tiles of every GEMM one training step
# launches (today's tile first), write the winners as MEASURED rows (JSON in LOG_DIR),
# then time the jitted step with them beside today's and torch.
tune_model() {
    local model="$1" name="$2" rows="${LOG_DIR:-/tmp}/tiles-$1.json" failed=0
    python tools/bench/matmul_tune.py --model "$model" --rows-out "$rows" || failed=1
    if [ ! -f "$rows" ]; then
        echo "tune_model $model: matmul_tune.py wrote no $rows, so the step is not timed" >&2
        return 1
    fi
    python tools/bench/train_step.py --device gpu --steps-only --only "$name" --rounds 5 \
        --step-sample 0.2 --tiles "$rows" || failed=1
    return $failed
}
tune_gpt6() { tune_model gpt6 "GPT 6"; }
tune_resnet18() { tune_model resnet18 ResNet-18; }
amp() {
    python tools/bench/amp_step.py --device gpu --widths 784 8192 8192 8192 8192 10 --batch 4096 \
        --sample 0.1 --rounds 2
}
ddp() { python tools/bench/ddp.py --hidden 4096 --batch 2048 --rounds 5; }

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tests reduce steps profile optim adam8bit conv conv_variants attention attention16 attention16_one_pass matmul tune_gpt6 tune_resnet18 amp ddp)
failed=()
for name in "${stages[@]}"; do
    echo "== $name ($(date -u +%H:%M:%S) UTC)"
    started=$SECONDS
    if ! timeout "${STAGE_LIMIT:-540}" bash -c "$(declare -f tune_model "$name"); $name" 2>&1 \
        | tee "${LOG_DIR:-/tmp}/$name.log"; then failed+=("$name"); fi
    echo "== $name: $((SECONDS - started)) s"
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
