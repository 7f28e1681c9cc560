"""Request hashes and graph ids pinned byte for byte: clients and caches keep them, so no
rewrite of the canonical form may change one. The pins were computed before the canonical
pass was made faster; a changed pin is a broken contract, not a test to update."""

from __future__ import annotations

import random

import pytest

from engine import Graph, Node, NodeTable
from schemas import canonical_graph, load_request
from tests.schemas.test_hashing import variants
from tests.schemas.wire_cases import pipeline_hash

PINNED_REQUESTS = {
    "base": "1ac152c759ecb8e278cfb71b2e0419ebfedcefe7f09cffed066dd02ee7b4af86",
    "one ulp": "b927ed7c73037e4643e2ba712098547d669dc8fbe6b342fcddd6743de3deb56d",
    "negative zero": "08cdfa933bfefe51fef7f3f3274c21de51bf27d22c01c48707d09fd6f0dcff6a",
    "zero": "258c0b73d92f6de1ae30f81c577d8cebce3fc8744107cb431f64a293ebd5187d",
    "shape": "57f70e89c8a94a53d39f6a2df05a7743889e547b9f4f54e7682e7e490d448dd8",
    "op": "f7fa478ffbf79d5f65612c07996efd6dd553bae526a766cb603f42b58595b07f",
    "edge order": "166817eab601f1303f36225b41bff9ffbd3a44e5aa2e2d5879be9a9d5c9bdcd4",
    "edge": "85f80df3e42d7a8e43ee450f40e8b995b3e8353b021de5f4ee9ebf802d5e9db7",
    "id": "93452fbaad49dcd8c76b39620382b80d81b25f65720565329807865b81d71950",
    "output": "8eaa96e3bedd4a90ff0f30d9df1bc6bdfeed6c303875fef03af2b86fa0d378be",
    "input override": "893f54b6bc1ffa8bd13cff01c94d1d333e0a58f3e4d18c8b4e859a3b2df88310",
    "seed": "ea8e5f7afd4db88d999109e598f80de385b3e80173ddc9ebf41045a7d261d729",
    "seed ones": "bd8f84f3adecb4bc36ef0085cade76bac2355120e4b9a8e74841836de88dc0c3",
    "wrt": "72055e9b388f00cc417aee2127942bcc1e78b3818f4ac20600f929646eb6b916",
    "wrt all": "fe3431a8b10d1fcb3c541dac554e212a95e481ff077b5d4a94c9f1a3c13377ca",
    "encoding": "78551354d0c39a8082d39eee0cbbb9a92b939d414582ced66cd9a907896fdde7",
    "kind": "abaccbc2494fd7b9427715c58307945d9da881d4dd0d6f3d8f22a7aa03df8c37",
    "gradcheck": "69d1a9658ed3a6a3f7f6c1ba2bc9433b475bf4a59b880cf6c30ff53e5832ed8c",
    "eps": "65325c280d243605556ee8b6505662466f2da2671af71c6a241916df14c4aa84",
    "check": "52c8c371d26bbb39a6d0b5345d883b358c06d09b96c59183c3d731c1cbd1b7fd",
    "gradcheck encoding": "53eddd651e38c5abf349e5a323fa0774349285d617af38e66fc53bea245830e1",
    "diagram": "ca7cb236c5cf92113e217178ffd7c4896f181a865a44d515bcd691899da58624",
    "format": "8a91e47ee73340b695dc45e0fa69243c3ab157cbc215c7cd0c8094c389b76d28",
    "batch": "8ec016897736a87fb842faeb4a6926d8812d7244995a9e6c461d821ed7e87bc3",
    "batch values": "f471e02e20f1200f8b231743e259ce88607290bcf67ac4cee035605c173cdea4",
    "batch reduce": "b6c35e2c50f569f90fcc0aeb19e9a88223b1ce6b68e65ebb151bb6ecd44fe893",
    "batch mean": "8356c719f8d5ee78f996465d4a93add16208733622903b3fee8c7eb5a11d4f77",
    "batch ids": "72a17c01dfda3c3587cbfcdfe69cadbbbfdada4f73be5bd54a13863c555488d1",
    "jacobian": "2d9a6f08a259fe6bf212b445ae529b354c60e7ad09b36d17cd235c409d23dfb1",
    "jacobian wrt": "1f947232c38467e64459023b8c95e19ec9ffdc122655b908e4135727dfdaf1be",
    "jacobian batch": "0b4f92f955db55241a4f379c2780c85ec9aa597d60b9c0987e2beaa842f3db04",
    "random 3000": "98cf53f82d2e8464dfe4ce0473376a69b86d429abe6b837398c1e6c017de3c1f",
    "random 3000 wrt": "8a15426a4e565e1a37a4164e916bbac8a7f283e92bd92f996cd9b783aed9042b",
}

PINNED_GRAPH_IDS = {
    "duplicate ids": "2188119c41046805970e7d4fc51bf61d32b5766b0140a2d87384be572d192216",
    "unknown op": "c4627c83455a67a813a2917bbf047425f86ac7a960dd60765b035b50f55bbd9e",
    "bad attr": "397f0eaf83cb35f0fa9f57258db5c258a9b7f55fab3673757d028c932dbf046d",
    "missing attr": "5781aab3484b0d6450c70f56d20863be0285a1ba88c524719108480ecba90101",
    "unknown input": "b3a06b44243a8fa3107158a1e40f09da32839b78f0ad8c5fa86f3cf8b5b795ba",
    "random 500": "f0eb7e0789e7f170ca505539e5e1048b780a8f78850c5eced7241f381dc8eb75",
    "random 500 as nodes": "f0eb7e0789e7f170ca505539e5e1048b780a8f78850c5eced7241f381dc8eb75",
    "random 500 as table": "f0eb7e0789e7f170ca505539e5e1048b780a8f78850c5eced7241f381dc8eb75",
}


def random_body(n: int, seed: int) -> dict:
    """A wide random scalar DAG with attrs of every spelling: the benchmark's kind of graph."""
    rng = random.Random(seed)
    nodes = [{"id": f"x{i}", "op": "input", "value": rng.uniform(-1, 1)} for i in range(50)]
    nodes.append({"id": "c", "op": "const", "value": [1.5, -2.0]})
    for k in range(n):
        a, b = (nodes[rng.randrange(len(nodes) - 1)]["id"] for _ in range(2))
        op = rng.choice(["add", "mul", "scale", "scale2", "pow", "relu", "sum", "softmax"])
        node = {"id": f"n{k}", "op": op, "inputs": [a, b] if op in ("add", "mul") else [a]}
        if op == "scale":
            node["attrs"] = {"a": round(rng.uniform(-0.9, 0.9), 3)}
        elif op == "scale2":
            node.update(op="scale", attrs={"a": rng.choice([2, 2.0, -0.0, 0.0, 1])})
        elif op == "pow":
            node["attrs"] = {"exponent": rng.choice([2, 3.0])}
        elif op == "softmax":
            node.update(inputs=["c"], attrs=rng.choice([{}, {"axis": -1}]))
        nodes.append(node)
    rng.shuffle(nodes)
    return {"graph": {"nodes": nodes, "output": "n0"}}


def odd_graphs() -> dict[str, Graph]:
    """Graphs the engine refuses: their canonical form is written all the same (the hash comes
    before compiling), from attrs kept as given."""
    x = Node("x", "input")
    return {
        "duplicate ids": Graph((x, Node("x", "relu", ("x",)), x), "x"),
        "unknown op": Graph((x, Node("f", "frobnicate", ("x",), {"k": [1, {"b": 2, "a": 1}]})),
                            "f"),
        "bad attr": Graph((x, Node("f", "scale", ("x",), {"a": "half", "z": float("nan")})),
                          "f"),
        "missing attr": Graph((x, Node("f", "scale", ("x",))), "f"),
        "unknown input": Graph((x, Node("f", "add", ("x", "nowhere"))), "f"),
    }


@pytest.mark.parametrize("name", sorted(PINNED_REQUESTS))
def test_request_hashes_are_pinned(name):
    kind, data = all_requests()[name]
    assert pipeline_hash(kind, data) == PINNED_REQUESTS[name]


@pytest.mark.parametrize("name", sorted(PINNED_GRAPH_IDS))
def test_graph_ids_are_pinned(name):
    assert canonical_graph(all_graphs()[name]).id == PINNED_GRAPH_IDS[name]


def test_every_case_has_a_pin():
    assert set(all_requests()) == set(PINNED_REQUESTS)
    assert set(all_graphs()) == set(PINNED_GRAPH_IDS)


def all_requests() -> dict[str, tuple[str, dict]]:
    return {
        **variants(),
        "random 3000": ("gradients", random_body(3000, 1)),
        "random 3000 wrt": ("gradients", {**random_body(3000, 2), "wrt": ["x3", "x1", "x3"]}),
    }


def all_graphs() -> dict[str, Graph]:
    loaded = load_request("gradients", random_body(500, 3)).graph
    return {
        **odd_graphs(),
        "random 500": loaded,
        "random 500 as nodes": Graph(tuple(loaded.nodes), loaded.output),
        "random 500 as table": Graph(NodeTable.of(tuple(loaded.nodes)), loaded.output),
    }
