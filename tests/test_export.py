"""Export (ONNX, TorchScript): the exported step computes what ``model.predict`` does.

Parity: a tiny trained model of each supported kind (RecurrentPPO with LSTM/GRU cores, separate,
shared or feed-forward critic, two layers; our PPO with hybrid heads; Discrete, hybrid
MultiDiscrete and Box actions; VecNormalize folded in) plays a 500-step run with several episode
starts at batch sizes 1 and 8, driven by ``model.predict``. At every step the ONNX file in
onnxruntime and the TorchScript file get the raw observation and the state they returned the
step before: their actions equal ``model.predict``'s, and their logits (or mean), values and
next states equal the policy's own forward pass to 1e-5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from sb3_selfplay import PPO, RecurrentPPO
from sb3_selfplay.masks import mask_layout, mask_logits
from sb3_selfplay.export import (
    ExportError,
    ObsNormalization,
    export_policy,
    make_acting_step,
    read_vecnormalize,
    sidecar_path,
)

ort = pytest.importorskip("onnxruntime")

# TorchScript is deprecated in recent PyTorch (torch.jit.load warns); the issue asks for it all the same
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
N_STEPS = 500
TOL = 1e-5


@dataclass(frozen=True)
class Case:
    """One policy kind: algorithm, env, policy and its kwargs, VecNormalize or not."""

    name: str
    algo: str
    env_id: str
    policy: str = "MlpLstmPolicy"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    masks: bool = False
    steps: int = N_STEPS


CASES = [
    Case("duel-lstm-critic-2layers", "rppo", "Duel-v0",
         policy_kwargs=dict(rnn_type="lstm", n_lstm_layers=2, enable_critic_lstm=True)),
    Case("duel-gru-shared", "rppo", "Duel-v0",
         policy_kwargs=dict(rnn_type="gru", shared_lstm=True, enable_critic_lstm=False), normalize=True),
    Case("duel-gru-critic-2layers", "rppo", "Duel-v0",
         policy_kwargs=dict(rnn_type="gru", n_lstm_layers=2, enable_critic_lstm=True)),
    Case("cartpole-lstm-mlp-critic", "rppo", "CartPole-v1",
         policy_kwargs=dict(rnn_type="lstm", enable_critic_lstm=False), normalize=True),
    Case("cartpole-gru-critic-2layers", "rppo", "CartPole-v1",
         policy_kwargs=dict(rnn_type="gru", n_lstm_layers=2, enable_critic_lstm=True), normalize=True),
    Case("cartpole-lstm-shared", "rppo", "CartPole-v1",
         policy_kwargs=dict(rnn_type="lstm", shared_lstm=True, enable_critic_lstm=False)),
    Case("pendulum-lstm-box", "rppo", "Pendulum-v1", policy_kwargs=dict(rnn_type="lstm"), normalize=True),
    Case("duel-ppo-hybrid", "ppo", "Duel-v0", policy="HybridMlpPolicy", normalize=True),
    Case("cartpole-ppo", "ppo", "CartPole-v1", policy="MlpPolicy"),
    # trained and exported with action masks: Connect Four's legal columns (int8 board observations),
    # and random masks on Duel that also force buttons (MaskablePPO's flat layout: 9 + 2 * 3 entries)
    Case("connect4-lstm-masks", "rppo", "ConnectFour-v0", policy_kwargs=dict(rnn_type="lstm"), masks=True),
    Case("duel-gru-masks", "rppo", "Duel-v0", policy_kwargs=dict(rnn_type="gru", n_lstm_layers=2), masks=True,
         normalize=True),
    Case("duel-ppo-hybrid-masks", "ppo", "Duel-v0", policy="HybridMlpPolicy", masks=True),
    Case("connect4-ppo-masks", "ppo", "ConnectFour-v0", policy="HybridMlpPolicy", masks=True),
    # Dict observations: an image through SB3's NatureCNN (CombinedExtractor) and a vector normalised
    # by VecNormalize (norm_obs_keys), one input per key; fewer steps (the CNN is the slow part)
    Case("multiobs-cnn-lstm", "rppo", "SimpleMultiObsEnv", policy="MultiInputLstmPolicy",
         policy_kwargs=dict(rnn_type="lstm"), normalize=True, steps=100),
]


class RandomMasks(gym.Wrapper):
    """Random legal-action masks (at least one legal choice per dimension) for an env without its own."""

    def __init__(self, env: gym.Env, seed: int = 0) -> None:
        super().__init__(env)
        self.layout = mask_layout(env.action_space)
        self.rng = np.random.default_rng(seed)

    def action_masks(self) -> np.ndarray:
        masks = self.rng.random(self.layout.size) < 0.6
        masks[self.layout.starts + self.rng.integers(0, self.layout.dims)] = True
        return masks


def _make_env(case: Case, n_envs: int, seed: int) -> Any:
    if case.env_id == "SimpleMultiObsEnv":
        from stable_baselines3.common.envs import SimpleMultiObsEnv

        return make_vec_env(lambda: SimpleMultiObsEnv(random_start=True), n_envs=n_envs, seed=seed)
    own_masks = case.env_id == "ConnectFour-v0"
    wrapper = RandomMasks if case.masks and not own_masks else None
    return make_vec_env(case.env_id, n_envs=n_envs, seed=seed, wrapper_class=wrapper)


def _train(case: Case, seed: int = 0) -> tuple[Any, VecNormalize | None]:
    venv = _make_env(case, n_envs=2, seed=seed)
    dict_obs = isinstance(venv.observation_space, gym.spaces.Dict)
    norm = VecNormalize(venv, norm_reward=False, norm_obs_keys=["vec"] if dict_obs else None) if case.normalize else None
    kwargs: dict[str, Any] = dict(n_steps=32, batch_size=32, n_epochs=2, seed=seed)
    if case.algo == "rppo":
        model = RecurrentPPO(case.policy, norm or venv, sequence_length=8,
                             policy_kwargs=dict(lstm_hidden_size=16, net_arch=[16], **case.policy_kwargs), **kwargs)
    else:
        model = PPO(case.policy, norm or venv, policy_kwargs=dict(net_arch=[16]), **kwargs)
    model.learn(64 if dict_obs else 256)
    if norm is not None:
        norm.training = False
    return model, norm


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def exported(request, tmp_path_factory) -> dict[str, Any]:
    case: Case = request.param
    model, norm = _train(case)
    out = tmp_path_factory.mktemp(case.name)
    sidecar = export_policy(model, out / "agent.onnx", out / "agent.pt", obs_normalization=norm,
                            action_masks=case.masks, observation_space=_make_env(case, 1, 0).observation_space)
    return {"case": case, "model": model, "norm": norm, "dir": out, "sidecar": sidecar}


def _session(path: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Reference:
    """The policy's own forward pass, step by step, with the actor and critic state carried (values, logits)."""

    def __init__(self, model: Any, batch: int) -> None:
        self.policy = model.policy
        self.recurrent = isinstance(model, RecurrentPPO)
        self.logits: th.Tensor | None = None
        self.policy.action_net.register_forward_hook(self._keep_logits)
        if self.recurrent:
            shape = (self.policy.lstm_actor.num_layers, batch, self.policy.lstm_actor.hidden_size)
            zeros = (th.zeros(shape), th.zeros(shape))
            self.states = RNNStates(zeros, zeros)

    def _keep_logits(self, _module: nn.Module, _inputs: Any, output: th.Tensor) -> None:
        self.logits = output.detach().clone()

    def step(self, obs: np.ndarray, starts: np.ndarray, masks: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, RNNStates | None]:
        obs_t, _ = self.policy.obs_to_tensor(obs)
        kwargs = {} if masks is None else {"action_masks": masks}
        with th.no_grad():
            if self.recurrent:
                actions, values, _, self.states = self.policy(
                    obs_t, self.states, th.as_tensor(starts, dtype=th.float32), deterministic=True, **kwargs)
            else:
                actions, values, _ = self.policy(obs_t, deterministic=True, **kwargs)
        logits = self.logits
        if masks is not None:  # the logits the masked distribution uses
            logits = mask_logits(logits, th.as_tensor(masks), self.policy.action_mask_layout.n_binary_logits)
        return actions.numpy(), logits.numpy(), values.numpy()[:, 0], self.states if self.recurrent else None


def _run_parity(exp: dict[str, Any], batch: int) -> None:
    case, model, norm, folder = exp["case"], exp["model"], exp["norm"], exp["dir"]
    sidecar = json.loads(sidecar_path(folder / "agent.onnx").read_text())
    in_names = [s["name"] for s in sidecar["inputs"]]
    out_names = [s["name"] for s in sidecar["outputs"]]
    session = _session(folder / "agent.onnx")
    scripted = th.jit.load(str(folder / "agent.pt"))
    env = _make_env(case, n_envs=batch, seed=123)
    raw = env.reset()
    starts = np.ones(batch, dtype=bool)
    reference = _Reference(model, batch)
    predict_state = None
    carried = {"onnx": {}, "torchscript": {}}
    for runtime in carried:
        carried[runtime] = {s["input"]: np.zeros([batch, *s["shape"][1:]], np.float32) for s in sidecar["state"]}
    n_starts = 0
    ties = {"onnx": 0, "torchscript": 0}
    decisions = overruled = 0
    period = min(120, case.steps // 4)
    for t in range(case.steps):
        # forced episode starts (the env keeps going): every env restarts its state a few times
        starts = starts | (((t + 41 * np.arange(batch)) % period) == 0) & (t > 0)
        n_starts += int(starts.sum())
        obs = norm.normalize_obs(raw) if norm is not None else raw
        masks = get_action_masks(env) if case.masks else None
        action, predict_state = model.predict(obs, state=predict_state, episode_start=starts, deterministic=True,
                                              **({} if masks is None else {"action_masks": masks}))
        ref_action, ref_logits, ref_value, ref_states = reference.step(obs, starts, masks)
        if masks is not None:  # how often the masks overrule the unmasked first choice
            first = np.asarray(ref_action).reshape(batch, -1)[:, 0]
            n_first = int(masks.shape[1] if sidecar["action_layout"]["kind"] == "discrete"
                          else sidecar["action_layout"]["n_categorical"])
            overruled += int((reference.logits.numpy()[:, :n_first].argmax(1) != first).sum())
        for runtime in ("onnx", "torchscript"):
            feed = {**_obs_feed(raw), "episode_start": starts.astype(np.float32), "action_masks": masks,
                    **carried[runtime]}
            feed = {name: feed[name] for name in in_names}
            if runtime == "onnx":
                got = dict(zip(out_names, session.run(None, feed), strict=True))
            else:
                with th.no_grad():
                    outs = scripted(*(th.as_tensor(v) for v in feed.values()))
                got = dict(zip(out_names, (o.numpy() for o in outs), strict=True))
            where = f"{case.name} {runtime} batch {batch} step {t}"
            got_action = got["action"]
            logits = got["mean" if "mean" in got else "logits"]
            np.testing.assert_allclose(logits, ref_logits, atol=TOL, rtol=TOL, err_msg=where)
            if np.issubdtype(got_action.dtype, np.integer):
                played = np.asarray(action).reshape(got_action.shape)
                assert np.array_equal(ref_action.reshape(got_action.shape), played), where
                ties[runtime] += _count_float_ties(got_action, played,
                                                   ref_logits, sidecar["action_layout"], where)
                decisions += got_action.size
            else:
                np.testing.assert_allclose(got_action, np.asarray(action).reshape(got_action.shape), atol=TOL,
                                           err_msg=where)
            np.testing.assert_allclose(got["value"], ref_value, atol=TOL, rtol=TOL, err_msg=where)
            if ref_states is not None:
                expected = {"h_actor": ref_states.pi[0], "c_actor": ref_states.pi[1],
                            "h_critic": ref_states.vf[0], "c_critic": ref_states.vf[1]}
                for spec in sidecar["state"]:
                    want = expected[spec["input"]].transpose(0, 1).numpy()
                    np.testing.assert_allclose(got[spec["output"]], want, atol=TOL, rtol=TOL, err_msg=where)
                # model.predict returns the actor's (h, c) as (n_layers, batch, hidden)
                np.testing.assert_allclose(got["next_h_actor"], predict_state[0].transpose(1, 0, 2), atol=TOL,
                                           err_msg=where)
            carried[runtime] = {s["input"]: got[s["output"]] for s in sidecar["state"]}
        raw, _, dones, _ = env.step(action)
        starts = dones.astype(bool)
    env.close()
    assert n_starts >= 3 * batch + 1  # the first step, and at least 3 more per env
    if case.masks and case.env_id == "Duel-v0":
        assert overruled > N_STEPS * batch // 10  # the masks mattered
    for runtime, count in ties.items():  # a float tie is rare: not a way for wrong actions to pass
        assert count <= max(1, decisions // 1000), (runtime, count, decisions)


def _obs_feed(raw: Any) -> dict[str, np.ndarray]:
    """Graph inputs of a raw observation: ``obs``, or ``obs_<key>`` per key of a Dict (float64 as float32)."""
    items = raw.items() if isinstance(raw, dict) else [(None, raw)]
    return {("obs" if key is None else f"obs_{key}"): (v.astype(np.float32) if v.dtype == np.float64 else v)
            for key, v in items}


def _count_float_ties(got: np.ndarray, want: np.ndarray, logits: np.ndarray, layout: dict[str, Any],
                      where: str) -> int:
    """Actions must be identical except where the policy's own logits tie within float error (two
    choices whose logits differ by less than 1e-5, or a button whose logit is within 1e-5 of 0):
    then either choice is the argmax up to rounding. Returns how many such ties decided differently."""
    rows = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
    kind = layout["kind"]
    for row in rows:
        g, w, lg = got[row].reshape(-1), want[row].reshape(-1), logits[row]
        if kind == "discrete":
            slices = [(0, lg.shape[0])]
        elif kind == "multidiscrete":
            edges = np.cumsum([0, *layout["nvec"]])
            slices = list(zip(edges[:-1], edges[1:], strict=True))
        else:
            slices = [(0, layout["n_categorical"])]
        for k, (lo, hi) in enumerate(slices):
            if g[k] != w[k]:
                part = lg[lo:hi]
                assert part[g[k]] >= part.max() - TOL and part[w[k]] >= part.max() - TOL, (where, g, w, part)
        if kind == "hybrid":
            buttons = lg[layout["n_categorical"]:]
            differ = g[1:] != w[1:]
            assert np.all(np.abs(buttons[differ]) <= TOL), (where, g, w, buttons)
    return len(rows)


@pytest.mark.parametrize("batch", [1, 8])
def test_parity_with_predict(exported, batch):
    _run_parity(exported, batch)


def test_sidecar_describes_the_graph(exported):
    case, folder = exported["case"], exported["dir"]
    sidecar = json.loads(sidecar_path(folder / "agent.onnx").read_text())
    assert sidecar["format"] == "sb3-selfplay-export" and sidecar["runtime"] == "onnx"
    assert json.loads(sidecar_path(folder / "agent.pt").read_text())["runtime"] == "torchscript"
    session = _session(folder / "agent.onnx")
    assert [i.name for i in session.get_inputs()] == [s["name"] for s in sidecar["inputs"]]
    assert [o.name for o in session.get_outputs()] == [s["name"] for s in sidecar["outputs"]]
    for spec, node in zip(sidecar["inputs"], session.get_inputs(), strict=True):
        assert node.shape[0] == "batch" and list(node.shape[1:]) == spec["shape"][1:], spec["name"]
    # the same JSON is in the ONNX file's metadata
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["sb3_selfplay"]) == sidecar
    assert (sidecar["obs_normalization"] is not None) == case.normalize
    policy = exported["model"].policy
    if case.algo == "rppo":
        rnn = sidecar["recurrent"]
        assert rnn["rnn_type"] == case.policy_kwargs["rnn_type"]
        assert rnn["n_layers"] == case.policy_kwargs.get("n_lstm_layers", 1)
        n_cores = 2 if policy.lstm_critic is not None else 1
        per_core = 2 if rnn["rnn_type"] == "lstm" else 1
        assert len(sidecar["state"]) == n_cores * per_core
        assert rnn["critic"] == ("lstm" if n_cores == 2 else "shared" if policy.shared_lstm else "mlp")
    else:
        assert sidecar["state"] == [] and sidecar["recurrent"] is None
    if case.env_id == "Duel-v0":
        layout = sidecar["action_layout"]
        assert layout["kind"] == "hybrid" and (layout["n_categorical"], layout["n_bernoulli"]) == (9, 3)
        assert sidecar["action_space"]["type"] == "HybridActionSpace"


# ------------------------------------------------------------------ folding and safety


def test_vecnormalize_read_with_allow_list(tmp_path):
    model, norm = _train(Case("n", "ppo", "CartPole-v1", policy="MlpPolicy", normalize=True))
    norm.save(str(tmp_path / "vecnormalize.pkl"))
    stats = read_vecnormalize(tmp_path / "vecnormalize.pkl")
    assert isinstance(stats, ObsNormalization)
    np.testing.assert_array_equal(stats.mean[None], norm.obs_rms.mean)
    np.testing.assert_array_equal(stats.std[None], np.sqrt(norm.obs_rms.var + norm.epsilon))
    # the folded graph maps raw observations to exactly VecNormalize's normalised ones
    step = make_acting_step(model.policy, stats)
    raw = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 3
    folded = step._normalize({None: th.as_tensor(raw)})[None].numpy()
    np.testing.assert_array_equal(folded, norm.normalize_obs(raw))


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must not run",))


def test_vecnormalize_pickle_outside_the_allow_list_is_refused(tmp_path, capsys):
    import pickle

    path = tmp_path / "vecnormalize.pkl"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ExportError, match=r"builtins\.print is not on the allow-list of a VecNormalize file; pass --trust-pickle"):
        read_vecnormalize(path)
    assert "this must not run" not in capsys.readouterr().out


class _Erfinv(nn.Module):
    def forward(self, x: th.Tensor) -> th.Tensor:
        return th.erfinv(th.tanh(x) * 0.5)


class ErfinvExtractor(nn.Module):
    """A features extractor with an op ONNX has no operator for (``erfinv``)."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 8) -> None:
        super().__init__()
        self.features_dim = features_dim
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), features_dim)
        self.odd = _Erfinv()

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.odd(self.linear(obs))


def test_unsupported_part_is_named_in_one_line(tmp_path):
    model = RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16, batch_size=16,
                         policy_kwargs=dict(lstm_hidden_size=4, features_extractor_class=ErfinvExtractor))
    with pytest.raises(ExportError) as info:
        export_policy(model, tmp_path / "agent.onnx")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("export: features_extractor (ErfinvExtractor) cannot be exported to ONNX")
    assert "erfinv" in message
    assert not (tmp_path / "agent.onnx").exists()


def test_unsupported_spaces_are_one_line_errors():
    from sb3_selfplay.export.graph import ActingStep, action_kind

    policy = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16).policy
    with pytest.raises(ExportError, match="action masks are not supported for box actions"):
        ActingStep(PPO("MlpPolicy", "Pendulum-v1", n_steps=16, batch_size=16).policy, action_masks=True)
    assert action_kind(policy) == "discrete"
    with pytest.raises(ExportError, match="policy Linear is not supported"):
        make_acting_step(nn.Linear(2, 2))


# ------------------------------------------------------------------ the command and the example

ENV = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _script(script: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Tiny zoo runs: CartPoleNoVel-v1 (VecNormalize), Duel-v0 and ConnectFour-v0 self-play (masks)."""
    cwd = tmp_path_factory.mktemp("runs")
    for env_id, ticks in (("CartPoleNoVel-v1", "128"), ("Duel-v0", "256"), ("ConnectFour-v0", "128")):
        out = _script(ROOT / "zoo_scripts" / "train.py", "--algo", "rppo", "--env", env_id, "--debug", "--debug-ticks",
                      ticks, "--seed", "0", "--verbose", "0", "--num-threads", "1", cwd=cwd)
        assert out.returncode == 0, out.stdout + out.stderr
    return cwd


def test_command_exports_a_run_folder_with_vecnormalize_folded_in(runs):
    run_dir = runs / "logs" / "rppo" / "CartPoleNoVel-v1_1"
    out = _script(ROOT / "zoo_scripts" / "export.py", "logs/rppo/CartPoleNoVel-v1_1", "--onnx", "x/agent.onnx",
                  "--torchscript", "x/agent.pt", cwd=runs)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "with logs/rppo/CartPoleNoVel-v1_1/CartPoleNoVel-v1/vecnormalize.pkl folded in" in out.stdout
    assert "inputs obs[batch,2]:float32 episode_start[batch]:float32 h_actor[batch,1," in out.stdout
    sidecar = json.loads((runs / "x" / "agent.onnx.json").read_text())
    assert sidecar["algo"] == "RecurrentPPO" and sidecar["source"]["env_id"] == "CartPoleNoVel-v1"
    assert sidecar["obs_normalization"]["folded"] is True
    # parity of the command's files: the model and VecNormalize loaded as the user would (their own files)
    venv = make_vec_env("CartPoleNoVel-v1", n_envs=1)
    norm = VecNormalize.load(str(run_dir / "CartPoleNoVel-v1" / "vecnormalize.pkl"), venv)
    norm.training = False
    model = RecurrentPPO.load(str(run_dir / "CartPoleNoVel-v1.zip"), device="cpu")
    exp = {"case": Case("cli", "rppo", "CartPoleNoVel-v1", normalize=True), "model": model, "norm": norm,
           "dir": runs / "x"}
    for batch in (1, 8):
        _run_parity(exp, batch)


def test_command_errors_are_one_line(runs):
    export = ROOT / "zoo_scripts" / "export.py"
    duel_zip = "logs/rppo/Duel-v0_1/Duel-v0.zip"
    for args, needle in (
        (["nothing.zip", "--onnx", "a.onnx"], "no such model file or run folder: nothing.zip"),
        ([duel_zip], "nothing to write: give --onnx OUT.onnx and/or --torchscript OUT.pt"),
        ([duel_zip, "--env", "CartPole-v1", "--onnx", "a.onnx"], "but env 'CartPole-v1' has Box"),
        ([duel_zip, "--load-best", "--onnx", "a.onnx"], "pick a model of a run folder"),
        (["--env", "Pong-v9", "--onnx", "a.onnx"], "--exp-id: no run of Pong-v9"),
        ([duel_zip, "--vecnormalize", "missing.pkl", "--onnx", "a.onnx"], "--vecnormalize: file not found"),
    ):
        out = _script(export, *args, cwd=runs)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, out.stderr)
    assert not (runs / "a.onnx").exists()


def test_console_lists_export(runs):
    out = subprocess.run([sys.executable, "-m", "sb3_selfplay", "--help"], cwd=runs, env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "export" in out.stdout
    out = subprocess.run([sys.executable, "-m", "sb3_selfplay", "export", "--help"], cwd=runs, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--onnx" in out.stdout and "--trust-pickle" in out.stdout


def _replay_log(model: Any, log: dict[str, np.ndarray], layout: dict[str, Any]) -> int:
    """Feed what the ONNX agent saw to ``model.predict`` (state carried): the same actions, except float
    ties of the policy's own logits (checked as in the parity test). Returns how many ties differed."""
    seen: list[th.Tensor] = []
    hook = model.policy.action_net.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    state, ties = None, 0
    try:
        for t in range(len(log["obs"])):
            masks = log["action_masks"][t] if "action_masks" in log else None
            action, state = model.predict(log["obs"][t], state=state, episode_start=log["episode_start"][t],
                                          deterministic=True, **({} if masks is None else {"action_masks": masks}))
            logits = seen.pop()
            if masks is not None:
                logits = mask_logits(logits, th.as_tensor(masks), model.policy.action_mask_layout.n_binary_logits)
            played = log["action"][t]
            ties += _count_float_ties(played, np.asarray(action).reshape(played.shape), logits.numpy(), layout,
                                      f"replayed step {t}")
    finally:
        hook.remove()
    return ties


@pytest.mark.parametrize("env_id, opponent", [("Duel-v0", "hunter"), ("ConnectFour-v0", "greedy")])
def test_play_onnx_example(runs, env_id, opponent):
    out = _script(ROOT / "zoo_scripts" / "export.py", "--algo", "rppo", "--env", env_id, "--onnx",
                  f"{env_id}.onnx", cwd=runs)
    assert out.returncode == 0, out.stdout + out.stderr
    sidecar = json.loads((runs / f"{env_id}.onnx.json").read_text())
    assert (sidecar["action_masks"] is not None) == (env_id == "ConnectFour-v0")  # auto: the game has masks
    play = _script(ROOT / "examples" / "play_onnx.py", f"{env_id}.onnx", "--games", "6", "--envs", "4",
                   "--log", f"{env_id}.npz", cwd=runs)
    assert play.returncode == 0, play.stdout + play.stderr
    first, second = play.stdout.strip().splitlines()
    match = __import__("re").fullmatch(
        rf"6 games of {env_id} vs {opponent}: (\d+) wins / (\d+) draws / (\d+) losses \((\d+) agent steps at batch 4\)",
        first)
    assert match and sum(int(g) for g in match.groups()[:3]) == 6, first
    assert second.startswith("agent process imported torch: no;"), second
    # what the agent played is what model.predict plays on the same observations
    log = dict(np.load(runs / f"{env_id}.npz"))
    assert len(log["obs"]) == int(match.group(4)) and log["episode_start"][0].all()
    model = RecurrentPPO.load(str(runs / "logs" / "rppo" / f"{env_id}_1" / f"{env_id}.zip"), device="cpu")
    assert _replay_log(model, log, sidecar["action_layout"]) <= max(1, log["action"].size // 1000)


def test_actor_only_graph(exported, tmp_path):
    """Without the critic: no value, no critic state; the same actions, logits and actor state."""
    model, norm, case = exported["model"], exported["norm"], exported["case"]
    full = make_acting_step(model.policy, norm, action_masks=case.masks)
    actor = make_acting_step(model.policy, norm, action_masks=case.masks, value=False)
    assert "value" not in [s.name for s in actor.outputs]
    assert all(s.input.endswith("_actor") for s in actor.state)
    inputs = full.example_inputs(batch=5, seed=3)
    names = [s.name for s in full.inputs]
    keep = [t for name, t in zip(names, inputs, strict=True) if name in {s.name for s in actor.inputs}]
    with th.no_grad():
        a, b = dict(zip([s.name for s in full.outputs], full(*inputs))), dict(zip([s.name for s in actor.outputs],
                                                                                    actor(*keep)))
    for name, value in b.items():
        assert th.equal(value, a[name]), name
