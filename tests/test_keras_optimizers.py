"""Keras-style optimizers (minicnn.optimizers) and the new update rules (minicnn.optim Adamax, RMSprop,
AdamW) against Keras 3's formulas, written out again here step by step in plain NumPy."""

import numpy as np
import pytest
from conftest import host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn import Sequential, optim
from minicnn import optimizers as ko
from minicnn.backend import get_backend
from minicnn.checkpoint import CheckpointError
from minicnn.layers import Dense

W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
GRADS = [
    np.array([[0.1, -0.2], [0.3, 0.0]]),
    np.array([[-0.4, 0.25], [0.05, 1.5]]),
    np.array([[0.2, 0.2], [-0.3, -0.1]]),
]
LRS = [0.1, 0.03, 0.2]  # the first through the constructor, the others set between steps


def dense_model(w0=W0):
    """One Dense(2) layer in float64 with kernel ``w0`` and a zero bias, on the current backend."""
    b = get_backend()
    model = Sequential([Dense(2)], input_shape=(2,), dtype="float64")
    layer = model.layers[0]
    layer.params["W"][...] = b.asarray(w0)
    layer.params["b"][...] = 0
    return model, layer


def run(opt, layer, grads, lrs=None) -> list:
    """Step ``opt`` once per gradient (setting ``learning_rate`` first from ``lrs[1:]``); the kernel after each."""
    b = get_backend()
    seen = []
    for i, g in enumerate(grads):
        if lrs is not None and i > 0:
            opt.learning_rate = lrs[i]
        layer.grads["W"] = b.asarray(g)
        layer.grads["b"] = b.asarray(np.zeros(2))
        opt.step()
        seen.append(host(layer.params["W"]).copy())
    return seen


# -- Keras 3's update rules, written again from its documentation: w after each step ----------
DEFAULTS = {
    "sgd": {"momentum": 0.0, "nesterov": False},
    "adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adamw": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    "adamax": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "rmsprop": {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
}


def sgd_step(w, g, lr, t, s, h):
    if not h["momentum"]:
        return w - lr * g
    s["v"] = h["momentum"] * s.get("v", 0.0) - lr * g
    return w + (h["momentum"] * s["v"] - lr * g if h["nesterov"] else s["v"])


def adam_step(w, g, lr, t, s, h, eps_hat=True):
    b1, b2, eps = h["beta_1"], h["beta_2"], h["epsilon"]
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
    if eps_hat:  # Keras: eps added to sqrt(v) before the bias correction
        return w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * s["m"] / (np.sqrt(s["v"]) + eps)
    return w - lr * (s["m"] / (1 - b1**t)) / (np.sqrt(s["v"] / (1 - b2**t)) + eps)


def adamax_step(w, g, lr, t, s, h):
    b1, b2 = h["beta_1"], h["beta_2"]
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g))
    return w - lr / (1 - b1**t) * s["m"] / (s["u"] + h["epsilon"])


def rmsprop_step(w, g, lr, t, s, h):
    rho = h["rho"]
    s["ms"] = rho * s.get("ms", 0.0) + (1 - rho) * g**2
    if h["centered"]:
        s["mg"] = rho * s.get("mg", 0.0) + (1 - rho) * g
        increment = lr * g / np.sqrt(s["ms"] - s["mg"] ** 2 + h["epsilon"])
    else:
        increment = lr * g / np.sqrt(s["ms"] + h["epsilon"])
    if not h["momentum"]:
        return w - increment
    s["mom"] = h["momentum"] * s.get("mom", 0.0) + increment
    return w - s["mom"]


STEPS = {"sgd": sgd_step, "adam": adam_step, "adamw": adam_step, "adamax": adamax_step, "rmsprop": rmsprop_step}


def reference(kind, grads, lrs, settings, w=W0, eps_hat=True) -> list:
    h = {**DEFAULTS[kind], **settings}
    step = STEPS[kind]
    if kind in ("adam", "adamw"):
        step = lambda *a: adam_step(*a, eps_hat=eps_hat)  # noqa: E731
    state: dict = {}
    seen = []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        if h.get("weight_decay"):  # Keras: decoupled, before the update, at this step's learning rate
            w = w - w * h["weight_decay"] * lr
        w = step(w, g, lr, t, state, h)
        seen.append(w)
    return seen


KERAS_CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd", {"nesterov": True}),  # Keras takes it: plain SGD
    ("adam", {}),
    ("adam", {"epsilon": 0.01, "weight_decay": 0.05}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.1, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("adamax", {}),
    ("adamax", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 0.01, "weight_decay": 0.05}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.9}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"rho": 0.8, "momentum": 0.5, "epsilon": 0.01, "centered": True, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("kind, settings", KERAS_CASES, ids=lambda v: str(v))
def test_keras_optimizer_follows_the_formula_with_the_learning_rate_changed(kind, settings, backend):
    model, layer = dense_model()
    opt = ko.get({"class_name": kind, "config": {"learning_rate": LRS[0], **settings}}).bind(model)
    seen = run(opt, layer, GRADS, LRS)
    for ours, expected in zip(seen, reference(kind, GRADS, LRS, settings)):
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    assert opt.iterations == 3 and opt.learning_rate == LRS[-1]


RULE_CASES = [  # minicnn.optim's model-first rules: Keras's maths under minicnn's argument names
    (optim.Adamax, "adamax", {}),
    (optim.Adamax, "adamax", {"beta1": 0.5, "beta2": 0.9, "eps": 0.01, "weight_decay": 0.05}),
    (optim.RMSprop, "rmsprop", {}),
    (optim.RMSprop, "rmsprop", {"rho": 0.8, "momentum": 0.5, "eps": 0.01, "centered": True, "weight_decay": 0.1}),
    (optim.AdamW, "adamw", {}),
    (optim.AdamW, "adamw", {"beta1": 0.8, "eps": 1e-3, "weight_decay": 0.1}),
]
KERAS_NAME = {"beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}


@pytest.mark.parametrize("rule, kind, settings", RULE_CASES, ids=lambda v: str(v))
def test_model_first_rule_follows_the_formula(rule, kind, settings, backend):
    model, layer = dense_model()
    opt = rule(model, lr=LRS[0], **settings)
    seen = run(opt, layer, GRADS, LRS)
    keras_settings = {KERAS_NAME.get(k, k): v for k, v in settings.items()}
    expected = reference(kind, GRADS, LRS, keras_settings, eps_hat=False)  # optim.AdamW: Adam's paper eps
    for ours, want in zip(seen, expected):
        np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-15)


def test_learning_rate_is_an_alias_of_lr_on_the_old_classes():
    model, layer = dense_model()
    opt = optim.SGD(model, lr=0.5)
    assert opt.learning_rate == 0.5
    opt.learning_rate = 0.25
    assert opt.lr == 0.25
    run(opt, layer, GRADS[:1])
    np.testing.assert_allclose(layer.params["W"], W0 - 0.25 * GRADS[0], rtol=1e-15)


unit = st.floats(0.0, 0.99, allow_subnormal=False)
decay = st.none() | st.floats(0.0, 0.5, allow_subnormal=False)
eps = st.floats(1e-8, 1.0)
SETTINGS = {
    "sgd": st.fixed_dictionaries({"momentum": st.just(0.0) | unit, "nesterov": st.booleans(), "weight_decay": decay}),
    "adam": st.fixed_dictionaries({"beta_1": unit, "beta_2": unit, "epsilon": eps, "weight_decay": decay}),
    "adamw": st.fixed_dictionaries({"beta_1": unit, "beta_2": unit, "epsilon": eps, "weight_decay": decay}),
    "adamax": st.fixed_dictionaries({"beta_1": unit, "beta_2": unit, "epsilon": eps, "weight_decay": decay}),
    "rmsprop": st.fixed_dictionaries(
        {"rho": unit, "momentum": st.just(0.0) | unit, "epsilon": eps, "centered": st.booleans(), "weight_decay": decay}
    ),
}
values = st.lists(st.floats(-5, 5, allow_subnormal=False), min_size=12, max_size=12)
learning_rates = st.lists(st.floats(1e-4, 1.0), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(SETTINGS)), data=st.data(), numbers=values, lrs=learning_rates)
def test_any_settings_follow_the_formula(kind, data, numbers, lrs):
    chosen = data.draw(SETTINGS[kind])
    if kind == "adamw" and chosen["weight_decay"] is None:
        chosen["weight_decay"] = 0.0  # AdamW takes a number only
    grads = list(np.array(numbers).reshape(3, 2, 2))
    model, layer = dense_model()
    opt = ko.get({"class_name": kind, "config": {"learning_rate": lrs[0], **chosen}}).bind(model)
    for ours, expected in zip(run(opt, layer, grads, lrs), reference(kind, grads, lrs, chosen)):
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)


# -- Keras's own optimizers, where Keras is installed --------------------------------------
KERAS_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "rmsprop": "RMSprop"}


def keeps_float64(keras) -> bool:
    """Whether Keras's backend keeps float64 in a product of a float64 array and a float64 scalar."""
    ops = keras.ops
    product = ops.multiply(ops.convert_to_tensor(np.ones(2), dtype="float64"), ops.cast(0.5, "float64"))
    return keras.backend.standardize_dtype(product.dtype) == "float64"


@pytest.mark.parametrize(
    "kind, settings",
    [
        ("adamax", {"beta_1": 0.5, "epsilon": 0.01, "weight_decay": 0.05}),
        ("rmsprop", {}),
        ("rmsprop", {"rho": 0.8, "momentum": 0.5, "epsilon": 0.01, "centered": True, "weight_decay": 0.1}),
        ("adamw", {"weight_decay": 0.1, "epsilon": 0.01}),
        ("adam", {}),
        ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ],
    ids=lambda v: str(v),
)
def test_steps_match_keras_own_optimizers(kind, settings):
    try:
        import keras
    except ImportError:
        pytest.skip("Keras not installed")
    lrs = [0.125, 0.0625, 0.25]  # exact in float32, where Keras keeps its learning rate
    var = keras.Variable(W0, dtype="float64")
    theirs = getattr(keras.optimizers, KERAS_CLASS[kind])(learning_rate=lrs[0], **settings)
    model, layer = dense_model()
    ours = getattr(ko, KERAS_CLASS[kind])(learning_rate=lrs[0], **settings).bind(model)
    seen = run(ours, layer, GRADS, lrs)
    # Some Keras backends do part of a float64 step in float32 (NumPy's; JAX's without JAX_ENABLE_X64=1):
    # then only to 1e-5, still far closer than a misplaced epsilon (0.01 here) or momentum would come.
    rtol = 1e-12 if keeps_float64(keras) else 1e-5
    for g, lr, mine in zip(GRADS, lrs, seen):
        theirs.learning_rate = lr
        theirs.apply([keras.ops.convert_to_tensor(g, dtype=var.dtype)], [var])
        np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(var), rtol=rtol, atol=rtol * 1e-2)
    assert ours.get_config().keys() == theirs.get_config().keys()


# -- names, settings and lookup -------------------------------------------------------------
KERAS_BASE_KEYS = [
    "name",
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "global_clipnorm",
    "clipvalue",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
]


@pytest.mark.parametrize(
    "cls, own, defaults",
    [
        (ko.SGD, ["momentum", "nesterov"], {"learning_rate": 0.01, "weight_decay": None}),
        (ko.Adam, ["beta_1", "beta_2", "epsilon", "amsgrad"], {"learning_rate": 0.001, "epsilon": 1e-7}),
        (ko.AdamW, ["beta_1", "beta_2", "epsilon", "amsgrad"], {"weight_decay": 0.004, "beta_2": 0.999}),
        (ko.Adamax, ["beta_1", "beta_2", "epsilon"], {"learning_rate": 0.001, "beta_1": 0.9}),
        (ko.RMSprop, ["rho", "momentum", "epsilon", "centered"], {"rho": 0.9, "momentum": 0.0, "centered": False}),
    ],
)
def test_get_config_has_keras_keys_and_defaults(cls, own, defaults):
    config = cls().get_config()
    assert list(config) == KERAS_BASE_KEYS + own
    assert {k: config[k] for k in defaults} == defaults
    twin = cls.from_config(config)
    assert type(twin) is cls and twin.get_config() == config and repr(twin) == repr(cls())


def test_repr_reads_like_the_constructor_and_aliases_reach_the_rule():
    opt = ko.Adamax(learning_rate=0.005)
    assert repr(opt) == "Adamax(learning_rate=0.005, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None)"
    opt.beta_1, opt.epsilon = 0.8, 1e-3
    assert (opt.beta1, opt.eps) == (0.8, 1e-3) and opt.get_config()["beta_1"] == 0.8
    assert repr(ko.AdamW()).startswith("AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9")
    assert ko.RMSprop().name == "rm_sprop" and ko.SGD(name="mine").name == "mine"  # Keras's default names


@pytest.mark.parametrize("name", ["sgd", "SGD", "adam", "AdamW", "adamax", "RMSprop", "rmsprop"])
def test_get_by_name_any_case_gives_a_default_instance(name):
    opt = ko.get(name)
    cls = {c.__name__.lower(): c for c in (ko.SGD, ko.Adam, ko.AdamW, ko.Adamax, ko.RMSprop)}[name.lower()]
    assert type(opt) is cls and opt.get_config() == cls().get_config() and opt.iterations == 0


def test_get_passes_optimizers_through_and_refuses_the_rest():
    opt = ko.RMSprop(momentum=0.5)
    assert ko.get(opt) is opt and ko.get(None) is None
    model, _ = dense_model()
    rule = optim.Adam(model)
    assert ko.get(rule) is rule
    assert ko.get({"class_name": "Adamax", "config": {"learning_rate": 0.5}}).learning_rate == 0.5
    with pytest.raises(ValueError, match=r"'adadelta2'; known names: \['adam', 'adamax', 'adamw', 'rmsprop', 'sgd'\]"):
        ko.get("adadelta2")
    with pytest.raises(ValueError, match="known names"):
        ko.get(42)


@pytest.mark.parametrize("name", ["Nadam", "Adagrad", "Adadelta", "Ftrl", "Lion", "Adafactor"])
def test_keras_optimizers_minicnn_lacks_are_named_when_asked_for(name):
    with pytest.raises(ValueError, match=f"keras.optimizers.{name} is not in minicnn"):
        ko.get(name.lower())
    with pytest.raises(AttributeError, match=f"keras.optimizers.{name} is not in minicnn"):
        getattr(ko, name)


def test_unsupported_keras_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="clipnorm=1.0"):
        ko.Adam(clipnorm=1.0)
    with pytest.raises(ValueError, match="use_ema=True"):
        ko.SGD(use_ema=True)
    with pytest.raises(ValueError, match="amsgrad=True"):
        ko.AdamW(amsgrad=True)
    with pytest.raises(ValueError, match="not recognized.*'lr'"):
        ko.Adam(lr=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        ko.AdamW(weight_decay=None)
    assert ko.Adam(clipnorm=None, use_ema=False).get_config() == ko.Adam().get_config()  # defaults are fine


@pytest.mark.parametrize("bad", [0, -1e-3, "0.1", None, float("nan"), float("inf"), True, [0.1]])
@pytest.mark.parametrize("make", [ko.SGD, ko.Adam, ko.AdamW, ko.Adamax, ko.RMSprop])
def test_a_learning_rate_that_is_not_a_positive_number_is_refused_by_name(make, bad):
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        make(learning_rate=bad)
    opt = make()
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        opt.learning_rate = bad
    assert opt.learning_rate == make().learning_rate  # unchanged
    opt.learning_rate = np.float32(0.5)
    assert opt.learning_rate == 0.5 and type(opt.learning_rate) is float
    assert make(learning_rate=np.float32(0.25)).learning_rate == 0.25


# -- binding to a model ---------------------------------------------------------------------
def test_step_before_binding_says_to_compile_and_changes_nothing():
    opt = ko.Adam()
    with pytest.raises(RuntimeError, match=r"model\.compile\(optimizer=\.\.\.\) first"):
        opt.step()
    assert opt.iterations == 0 and opt.slots == {} and not opt.bound
    with pytest.raises(RuntimeError, match="not bound"):
        opt.model  # noqa: B018


def test_binding_the_same_model_again_is_a_no_op_another_is_an_error():
    model, layer = dense_model()
    opt = ko.SGD(momentum=0.9)
    assert opt.bind(model) is opt and opt.bind(model) is opt and opt.model is model
    other, _ = dense_model()
    with pytest.raises(ValueError, match="already bound to another model"):
        opt.bind(other)
    assert opt.model is model
    with pytest.raises(TypeError, match="needs a minicnn model"):
        ko.Adam().bind("model")
    rule = optim.Adamax(model)  # the model-first rules bind to their own model only
    assert rule.bind(model) is rule
    with pytest.raises(ValueError, match="another model"):
        rule.bind(other)


# -- checkpoints ---------------------------------------------------------------------------
ROUND_TRIPS = [
    lambda m: ko.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01).bind(m),
    lambda m: ko.Adam(weight_decay=0.01).bind(m),
    lambda m: ko.AdamW().bind(m),
    lambda m: ko.Adamax(learning_rate=5e-3).bind(m),
    lambda m: ko.RMSprop(momentum=0.9, centered=True, weight_decay=0.01).bind(m),
    lambda m: optim.Adamax(m, weight_decay=0.01),
    lambda m: optim.RMSprop(m, momentum=0.5, centered=True),
    lambda m: optim.AdamW(m, ema_momentum=0.9),
]


@pytest.mark.parametrize("make", ROUND_TRIPS, ids=range(len(ROUND_TRIPS)))
def test_state_round_trips_through_a_checkpoint_and_continues_identically(make, tmp_path):
    model_a, layer_a = dense_model()
    opt_a = make(model_a)
    run(opt_a, layer_a, GRADS[:2])
    opt_a.learning_rate = 0.02
    model_a.save(tmp_path / "m.npz", optimizer=opt_a)
    model_b, layer_b = dense_model(np.zeros((2, 2)))
    opt_b = make(model_b)
    model_b.load_weights(tmp_path / "m.npz", optimizer=opt_b)
    assert opt_b.iterations == 2 and opt_b.learning_rate == 0.02
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key, value in state_a.items():
        np.testing.assert_array_equal(state_b[key], value)
    np.testing.assert_array_equal(run(opt_a, layer_a, GRADS[2:]), run(opt_b, layer_b, GRADS[2:]))


def test_keras_and_model_first_states_do_not_mix(tmp_path):
    model, layer = dense_model()
    opt = ko.Adam().bind(model)
    run(opt, layer, GRADS[:1])
    model.save(tmp_path / "m.npz", optimizer=opt)
    with pytest.raises(CheckpointError, match="'keras.Adam', not Adam"):
        model.load_weights(tmp_path / "m.npz", optimizer=optim.Adam(model))
    with pytest.raises(RuntimeError, match="not bound"):
        model.load_weights(tmp_path / "m.npz", optimizer=ko.Adam())
    model.load_weights(tmp_path / "m.npz", optimizer=ko.Adam().bind(model))


@pytest.mark.parametrize(
    "make",
    [
        lambda m: optim.Adamax(m, lr=1e-2, weight_decay=0.1),
        lambda m: optim.RMSprop(m, momentum=0.9, centered=True, weight_decay=0.01),
        lambda m: ko.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01).bind(m),
        lambda m: ko.AdamW(learning_rate=1e-2).bind(m),
    ],
)
def test_step_in_blocks_on_threads_gives_the_same_bits(make):
    """fit updates large parameters in row blocks on threads (parallel.ShardedOptimizer): same bits as step()."""
    from minicnn import parallel

    rng = np.random.default_rng(0)
    models = [Sequential([Dense(300), Dense(3)], input_shape=(1000,), seed=1) for _ in range(2)]
    opts = [make(m) for m in models]
    with parallel.ShardedModel(models[1], threads=3) as sharded:
        threaded = parallel.ShardedOptimizer(opts[1], sharded)
        for _ in range(3):
            for layer, twin in zip(*(m.layers for m in models)):
                for name, p in layer.params.items():
                    layer.grads[name] = np.asarray(rng.standard_normal(p.shape), p.dtype)
                    twin.grads[name] = layer.grads[name].copy()
            opts[0].step()
            threaded.step()
    for a, b in zip(models[0].layers, models[1].layers):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adamax", "rmsprop"])
def test_fit_trains_with_a_bound_keras_optimizer(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = Sequential([Dense(8), Dense(2)], input_shape=(4,), seed=0)
    opt = ko.get({"class_name": name, "config": {"learning_rate": 0.05}})
    with pytest.raises(RuntimeError, match=r"model\.compile\(optimizer=\.\.\.\) first"):
        model.fit(x, y, optimizer=opt, epochs=1, verbose=0)
    history = model.fit(x, y, optimizer=opt.bind(model), epochs=4, batch_size=16, verbose=0, seed=0)
    assert history["loss"][-1] < history["loss"][0] and opt.iterations == 4 * 8
