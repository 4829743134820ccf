"""The watcher's pure rules (no node, no emulator): topics, decoding, depth, reorg detection,
and the RPC client's failover on loopback HTTP servers that fail the way nodes do."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from shared.chain import blocks as B
from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable, redact

ADDR = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
TOKEN = "0x" + "12" * 20


def test_address_topic_is_32_bytes_left_padded_and_round_trips():
    topic = B.address_topic(ADDR.upper().replace("0X", "0x"))
    assert len(topic) == 66 and topic.startswith("0x" + "0" * 24)
    assert B.topic_address(topic) == ADDR
    with pytest.raises(B.ChainDataError):
        B.address_topic("0x1234")


def test_logs_filter_puts_every_address_of_a_batch_in_one_topic2_list():
    f = B.logs_filter(10, 12, [TOKEN.upper().replace("0X", "0x")], [ADDR, OTHER])
    assert f["fromBlock"] == "0xa" and f["toBlock"] == "0xc"
    assert f["address"] == [TOKEN]
    assert f["topics"][0] == B.TRANSFER_TOPIC and f["topics"][1] is None
    assert f["topics"][2] == [B.address_topic(ADDR), B.address_topic(OTHER)]


def test_batches_split_without_loss():
    items = list(range(1001))
    parts = list(B.batches(items, 500))
    assert [len(p) for p in parts] == [500, 500, 1] and [x for p in parts for x in p] == items
    assert list(B.batches([], 500)) == []


def _log(**over):
    log = {"address": TOKEN, "topics": [B.TRANSFER_TOPIC, B.address_topic(OTHER), B.address_topic(ADDR)],
           "data": "0x" + (2**200).to_bytes(32, "big").hex(), "blockNumber": "0x10",
           "blockHash": "0x" + "aa" * 32, "transactionHash": "0x" + "BB" * 32, "logIndex": "0x3",
           "removed": False}
    log.update(over)
    return log


def test_decode_transfer_log_is_exact_beyond_int64_and_lower_cases():
    t = B.decode_transfer_log(_log())
    assert t.amount == 2**200 and t.to == ADDR and t.sender == OTHER and t.token == TOKEN
    assert t.log_index == 3 and t.block_number == 16 and t.tx_hash == "0x" + "bb" * 32


def test_decode_ignores_removed_logs_erc721_and_other_events():
    assert B.decode_transfer_log(_log(removed=True)) is None
    topics = _log()["topics"] + [B.address_topic(ADDR)]
    assert B.decode_transfer_log(_log(topics=topics, data="0x")) is None   # ERC-721
    assert B.decode_transfer_log(_log(topics=["0x" + "00" * 32] + _log()["topics"][1:])) is None


def test_native_transfers_only_to_watched_with_value():
    block = {"number": "0x5", "hash": "0x" + "ee" * 32, "transactions": [
        {"hash": "0x01", "from": OTHER, "to": ADDR.upper().replace("0X", "0x"), "value": "0xde0b6b3a7640000"},
        {"hash": "0x02", "from": OTHER, "to": OTHER, "value": "0x1"},
        {"hash": "0x03", "from": OTHER, "to": ADDR, "value": "0x0"},
        {"hash": "0x04", "from": OTHER, "to": None, "value": "0x5"},   # contract creation
    ]}
    found = B.native_transfers(block, {ADDR})
    assert [(t.tx_hash, t.amount, t.log_index) for t in found] == [("0x01", 10**18, -1)]
    with pytest.raises(B.ChainDataError):
        B.native_transfers({**block, "transactions": ["0x01"]}, {ADDR})


@pytest.mark.parametrize("required,depth,confirmed", [
    (0, 1, True), (1, 1, True), (2, 1, False), (2, 2, True), (6, 5, False), (6, 6, True)])
def test_confirmation_depth(required, depth, confirmed):
    assert B.confirmations(100 + depth - 1, 100) == depth
    assert B.is_confirmed(depth, required) is confirmed


def test_check_chain_and_common_ancestor():
    blocks = [{"hash": "0xb1", "parentHash": "0xb0"}, {"hash": "0xb2", "parentHash": "0xb1"}]
    assert B.check_chain("0xB0", blocks)
    assert not B.check_chain("0xb9", blocks)
    assert not B.check_chain("0xb0", [blocks[0], {"hash": "0xb2", "parentHash": "0xzz"}])
    recent = [(10, "0xa"), (11, "0xb"), (12, "0xc"), (13, "0xd")]
    assert B.common_ancestor(recent, {10: "0xa", 11: "0xb", 12: "0xX", 13: "0xY"}) == (11, "0xb")
    assert B.common_ancestor(recent, {10: "0x1", 11: "0x2", 12: "0x3", 13: "0x4"}) is None
    assert B.trim_recent(recent + [(13, "0xe")], 3) == [(11, "0xb"), (12, "0xc"), (13, "0xe")]


@pytest.mark.parametrize("block_time,ceiling,expected", [
    (1.0, 1.0, 0.5), (2.0, 1.0, 1.0), (12.0, 1.0, 1.0), (0.2, 1.0, 0.25), (None, 1.0, 1.0),
    (1.0, 0.3, 0.3)])
def test_poll_interval_is_half_a_block_within_bounds(block_time, ceiling, expected):
    from shared.chain.watcher import view
    net = view({"name": "n", "chain_id": 1, "rpc_urls": ["http://x"], "block_time_seconds": block_time})
    assert net.poll_interval(ceiling) == expected


def test_quantity_is_strict():
    assert B.quantity("0x1f") == 31
    for bad in ("31", None, "0xzz", 1.5):
        with pytest.raises(B.ChainDataError):
            B.quantity(bad)


def test_redact_keeps_no_path_or_query():
    assert redact("https://eth.example.com/v3/SECRETKEY?x=1") == "https://eth.example.com"
    assert redact("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


# --- the RPC client against loopback nodes ----------------------------------------------------

class _Node(http.server.BaseHTTPRequestHandler):
    """A tiny JSON-RPC node: answers eth_blockNumber; ``mode`` makes it fail like real ones."""
    mode = "ok"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.server.mode
        if mode == "503":
            self.send_response(503)
            self.end_headers()
            return
        items = body if isinstance(body, list) else [body]
        out = []
        for item in items:
            if mode == "limit":
                out.append({"jsonrpc": "2.0", "id": item["id"],
                            "error": {"code": -32005, "message": "limit exceeded"}})
            elif item["method"] == "bad":
                out.append({"jsonrpc": "2.0", "id": item["id"],
                            "error": {"code": -32602, "message": "invalid params"}})
            elif item["method"] == "eth_sendRawTransaction":
                out.append({"jsonrpc": "2.0", "id": item["id"],
                            "error": {"code": -32003, "message": "nonce too low"}})
            else:
                out.append({"jsonrpc": "2.0", "id": item["id"], "result": hex(self.server.block)})
        data = json.dumps(out if isinstance(body, list) else out[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def nodes():
    servers = []
    for block in (100, 200):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Node)
        srv.mode, srv.block = "ok", block
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield servers
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _url(srv):
    return f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.mark.parametrize("mode", ["503", "limit"])
def test_failover_to_the_next_endpoint_and_bench_the_failed_one(nodes, mode):
    a, b = nodes
    a.mode = mode
    rpc = RpcClient("t", [_url(a), _url(b)], timeout=2, cooldown_s=60)
    assert rpc.call("eth_blockNumber") == hex(200)
    health = rpc.health()
    assert health[0]["errors"] == 1 and not health[0]["healthy"]
    assert health[1]["latest_block"] == 200 and health[1]["healthy"]
    # benched: the next call goes straight to the second endpoint
    assert rpc.call("eth_blockNumber") == hex(200)
    assert rpc.health()[0]["calls"] == 1 and rpc.http_calls == 3


def test_dead_port_then_every_endpoint_down(nodes):
    from infra.local.stack import free_port

    a, _ = nodes
    dead = f"http://127.0.0.1:{free_port()}"
    rpc = RpcClient("t", [dead, _url(a)], timeout=1, cooldown_s=0)
    assert rpc.call("eth_blockNumber") == hex(100)
    a.mode = "503"
    with pytest.raises(RpcUnavailable):
        rpc.call("eth_blockNumber")
    a.mode = "ok"   # the node comes back: the client uses it again
    assert rpc.call("eth_blockNumber") == hex(100)


def test_request_errors_are_not_failed_over(nodes):
    a, b = nodes
    rpc = RpcClient("t", [_url(a), _url(b)], timeout=2)
    with pytest.raises(RpcError) as exc:
        rpc.call("bad")
    assert exc.value.code == -32602
    assert rpc.health()[0]["errors"] == 0 and rpc.health()[1]["calls"] == 0


def test_a_rejected_transaction_is_not_failed_over(nodes):
    """EIP-1474 -32003 (transaction rejected) is about the transaction: the next node would
    reject it too, and the first node is healthy."""
    a, b = nodes
    rpc = RpcClient("t", [_url(a), _url(b)], timeout=2)
    with pytest.raises(RpcError) as exc:
        rpc.call("eth_sendRawTransaction", ["0x02"])
    assert exc.value.code == -32003
    assert rpc.health()[0]["healthy"] and rpc.health()[1]["calls"] == 0


def test_batch_is_one_http_call(nodes):
    a, _ = nodes
    rpc = RpcClient("t", [_url(a)])
    assert rpc.batch([("eth_blockNumber", [])] * 5) == [hex(100)] * 5
    assert rpc.counters == {"http_calls": 1, "rpc_requests": 5}
