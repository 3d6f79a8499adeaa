// A third-party MCP client for TestMCPServerTypeScriptClient: the official
// TypeScript SDK lists Troupe's tools and calls an agent and a workflow over
// streamable HTTP, then prints what it got as JSON.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "troupe-test", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
const agent = await client.callTool({ name: "echoer", arguments: { message: "from node" } });
const brief = await client.callTool({ name: "brief", arguments: { topic: "node" } });
// The SDK checks structured content against the tool's output schema.
const shaped = await client.callTool({ name: "shaped", arguments: { message: "node" } });
console.log(JSON.stringify({
  server: client.getServerVersion().name,
  tools: tools.map((t) => t.name).sort(),
  agent: text(agent),
  session: agent._meta["troupe/session_id"] ? "yes" : "no",
  brief: text(brief),
  shaped: shaped.structuredContent,
}));
await client.close();
