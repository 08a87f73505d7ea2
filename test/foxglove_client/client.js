// A scripted Foxglove WebSocket client for test/test_foxglove.py and tools/foxglove_rate.py, built on
// the reference client of the Foxglove WebSocket protocol (@foxglove/ws-protocol) over `ws`.
//
//   node client.js ws://127.0.0.1:PORT
//
// Writes one JSON object per line to stdout (what the server said) and reads one JSON command per
// line from stdin (what to do). Events: {"ev":"open"}, {"ev":"serverInfo",...},
// {"ev":"advertise","channels":[{id,topic,encoding,schemaName}]}, {"ev":"services","services":[{id,name}]},
// {"ev":"message","topic","logTime","size","data"(base64, the first `keep` messages of a topic)},
// {"ev":"status","level","message"}, {"ev":"serviceResponse","callId","data"(utf-8 text)},
// {"ev":"serviceFailure","callId","message"}, {"ev":"stats","topics":{topic:{count,bytes,first,last}}},
// {"ev":"time","timestamp"}, {"ev":"close","code"}, {"ev":"error","message"}.
// Commands: {"op":"subscribe","topics":[...],"keep":N}, {"op":"advertise","topic","encoding","schemaName"},
// {"op":"publish","topic","json":{...}} or {"op":"publish","topic","base64":"..."},
// {"op":"call","service","callId","request":{...}}, {"op":"stats"}, {"op":"close"}.
"use strict";

const readline = require("readline");
const WebSocket = require("ws");
const { FoxgloveClient } = require("@foxglove/ws-protocol");

const url = process.argv[2];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// foxglove-sdk servers (0.30) speak the protocol under the name "foxglove.sdk.v1", the same protocol as
// "foxglove.websocket.v1" (the reference client's name for it, which leaves the choice to the socket).
const ws = new WebSocket(url, ["foxglove.sdk.v1", FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
const client = new FoxgloveClient({ ws });

const channelsByTopic = new Map();      // topic -> server channel
const topicBySubscription = new Map();  // subscription id -> topic
const servicesByName = new Map();
const clientChannels = new Map();       // topic -> {id, encoding}
const stats = new Map();                // topic -> {count, bytes, first, last}
const keepByTopic = new Map();
const keptByTopic = new Map();
const pendingSubscriptions = new Map(); // topic -> keep, for channels not advertised yet

function subscribe(topic, keep) {
  const channel = channelsByTopic.get(topic);
  if (!channel) {
    pendingSubscriptions.set(topic, keep);
    return;
  }
  const id = client.subscribe(channel.id);
  topicBySubscription.set(id, topic);
  keepByTopic.set(topic, keep);
}

client.on("open", () => out({ ev: "open" }));
client.on("error", (err) => out({ ev: "error", message: String(err && err.message ? err.message : err) }));
client.on("close", (event) => {
  out({ ev: "close", code: event && event.code });
  process.exit(0);
});
client.on("serverInfo", (info) =>
  out({ ev: "serverInfo", name: info.name, capabilities: info.capabilities, supportedEncodings: info.supportedEncodings }));
client.on("status", (s) => out({ ev: "status", level: s.level, message: s.message }));
client.on("time", (t) => out({ ev: "time", timestamp: String(t.timestamp) }));
client.on("advertise", (channels) => {
  for (const c of channels) {
    channelsByTopic.set(c.topic, c);
    if (pendingSubscriptions.has(c.topic)) {
      const keep = pendingSubscriptions.get(c.topic);
      pendingSubscriptions.delete(c.topic);
      subscribe(c.topic, keep);
    }
  }
  out({ ev: "advertise", channels: channels.map((c) => ({ id: c.id, topic: c.topic, encoding: c.encoding, schemaName: c.schemaName })) });
});
client.on("advertiseServices", (services) => {
  for (const s of services) servicesByName.set(s.name, s);
  out({ ev: "services", services: services.map((s) => ({ id: s.id, name: s.name })) });
});
client.on("message", (m) => {
  const topic = topicBySubscription.get(m.subscriptionId);
  const now = Date.now() / 1000;
  const size = m.data.byteLength;
  const s = stats.get(topic) || { count: 0, bytes: 0, first: now, last: now };
  s.count += 1;
  s.bytes += size;
  s.last = now;
  stats.set(topic, s);
  const kept = keptByTopic.get(topic) || 0;
  if (kept < (keepByTopic.get(topic) || 0)) {
    keptByTopic.set(topic, kept + 1);
    const bytes = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    out({ ev: "message", topic, logTime: String(m.timestamp), size, data: bytes.toString("base64") });
  }
});
client.on("serviceCallResponse", (r) => {
  const text = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).toString("utf8");
  out({ ev: "serviceResponse", callId: r.callId, encoding: r.encoding, data: text });
});
client.on("serviceCallFailure", (f) => out({ ev: "serviceFailure", callId: f.callId, message: f.message }));

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    out({ ev: "error", message: `bad command: ${line}` });
    return;
  }
  try {
    if (cmd.op === "subscribe") {
      for (const topic of cmd.topics) subscribe(topic, cmd.keep || 0);
    } else if (cmd.op === "advertise") {
      const id = client.advertise({ topic: cmd.topic, encoding: cmd.encoding, schemaName: cmd.schemaName });
      clientChannels.set(cmd.topic, { id, encoding: cmd.encoding });
      out({ ev: "advertised", topic: cmd.topic, id });
    } else if (cmd.op === "publish") {
      const ch = clientChannels.get(cmd.topic);
      const data = cmd.json !== undefined ? Buffer.from(JSON.stringify(cmd.json)) : Buffer.from(cmd.base64, "base64");
      client.sendMessage(ch.id, new Uint8Array(data));
    } else if (cmd.op === "call") {
      const service = servicesByName.get(cmd.service);
      if (!service) {
        out({ ev: "error", message: `no service ${cmd.service}` });
        return;
      }
      const data = new Uint8Array(Buffer.from(JSON.stringify(cmd.request || {})));
      client.sendServiceCallRequest({ serviceId: service.id, callId: cmd.callId, encoding: "json", data: new DataView(data.buffer) });
    } else if (cmd.op === "stats") {
      const topics = {};
      for (const [topic, s] of stats) topics[topic] = s;
      out({ ev: "stats", topics });
    } else if (cmd.op === "close") {
      client.close();
    }
  } catch (err) {
    out({ ev: "error", message: String(err && err.message ? err.message : err) });
  }
});
rl.on("close", () => client.close());
