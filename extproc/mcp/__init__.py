"""MCP (Model Context Protocol) traffic: JSON-RPC 2.0 over streamable HTTP.

- `jsonrpc`: one message parsed and validated, and the JSON-RPC errors Weir answers with;
- `adapter`: where the policy-relevant parts of MCP messages are (tool names,
  routing headers, arguments, results, tool definitions);
- `guard`: one MCP call judged, request and answer (JSON or SSE), sans-I/O;
- `exchange`: the hooks `extproc.stream.Exchange` calls at each step.
"""
