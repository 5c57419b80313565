import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.text("hi " + new URL(c.req.url).pathname));
app.get("/*", async (c) => { const u = new URL(c.req.url); return c.json({ url: c.req.url, raw: c.req.raw.url, path: u.pathname }); });
export default app;
