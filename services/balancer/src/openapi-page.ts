/** A browsable page of /openapi.json, rendered in the page itself (no CDN, no framework). */
export const openApiPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Quartet REST API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.verb{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#1565c0}.post{color:#2e7d32}.put{color:#ef6c00}.patch{color:#6a1b9a}.delete{color:#c62828}
code,pre{background:#f5f5f5;padding:.1rem .3rem;border-radius:3px}pre{padding:.5rem;overflow:auto}
</style></head><body><h1>Quartet REST API</h1>
<p>The REST tier of the gateway, from <a href="/openapi.json">/openapi.json</a>.</p><div id="ops"></div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const schemas = doc.components.schemas;
  const show = (s) => s && s.$ref ? esc(s.$ref.split("/").pop()) + "<pre>" + esc(JSON.stringify(schemas[s.$ref.split("/").pop()], null, 2)) + "</pre>" : "<pre>" + esc(JSON.stringify(s, null, 2)) + "</pre>";
  let html = "";
  for (const [path, ops] of Object.entries(doc.paths)) for (const [verb, op] of Object.entries(ops)) {
    html += '<div class="op"><span class="verb ' + verb + '">' + verb + "</span><code>" + esc(path) + "</code> " + esc(op.operationId);
    if (op.parameters.length) html += "<p>Parameters:</p><ul>" + op.parameters.map((p) => "<li><code>" + esc(p.name) + "</code> (" + p.in + ", " + esc(p.schema.type + (p.schema.format ? " " + p.schema.format : "")) + ")" + (p.description ? ": " + esc(p.description) : "") + "</li>").join("") + "</ul>";
    if (op.requestBody) html += "<p>Body:</p>" + show(op.requestBody.content["application/json"].schema);
    html += "<p>Response:</p>" + show(op.responses["200"].content["application/json"].schema) + "</div>";
  }
  document.getElementById("ops").innerHTML = html;
});
</script></body></html>
`;
