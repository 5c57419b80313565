/** The console's one stylesheet, inlined under the page's nonce: system fonts, light and dark, cards that stack on a phone. */
export const CONSOLE_CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--muted:#5b6470;--card:#fff;--line:#d9dee4;--ok:#17803d;--warn:#a15c00;--bad:#c2261d;--link:#0b5cad}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e7eaee;--muted:#9aa4af;--card:#1a1f25;--line:#2e353d;--ok:#4cc27a;--warn:#e5a13a;--bad:#ff6b60;--link:#7db7ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--link)}
code{font:13px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
header.top{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.75rem 1rem;background:var(--card);border-bottom:1px solid var(--line)}
header.top h1{font-size:1.15rem;margin:0}
header.top .who{color:var(--muted);font-size:.9rem}
header.top form{margin:0}
button{font:inherit;padding:.35rem .8rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);cursor:pointer}
main{padding:1rem;max-width:1200px;margin:0 auto}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:0 0 .5rem;display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}
h4{font-size:.9rem;margin:.9rem 0 .3rem;color:var(--muted)}
.cards{display:grid;gap:.75rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,20rem),1fr))}
.card{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--ok);border-radius:8px;padding:.75rem .9rem}
.card.warn{border-left-color:var(--warn)}
.card.bad{border-left-color:var(--bad)}
.channel{margin-bottom:.75rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:0}
dt{color:var(--muted)}
dd{margin:0;min-width:0}
.badge{display:inline-block;white-space:nowrap;font-size:.75rem;font-weight:600;padding:.05rem .45rem;border-radius:999px;border:1px solid currentColor}
.badge.ok{color:var(--ok)}.badge.warn{color:var(--warn)}.badge.bad{color:var(--bad)}
.summary{display:flex;flex-wrap:wrap;gap:.5rem}
.summary .badge{font-size:.85rem;padding:.2rem .6rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td a{white-space:nowrap}
tr.behind td:first-child{box-shadow:inset 3px 0 var(--warn)}
ul.issues{margin:.3rem 0 0;padding-left:1.1rem}
.muted{color:var(--muted)}
footer{padding:1rem;color:var(--muted);font-size:.85rem;text-align:center}
form.signin{max-width:26rem;margin:3rem auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1.25rem}
form.signin label{display:block;font-weight:600;margin-bottom:.35rem}
form.signin input{width:100%;font:inherit;padding:.5rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
form.signin button{margin-top:.8rem}
.error{color:var(--bad);font-weight:600}
@media (max-width:600px){main{padding:.6rem}dl{grid-template-columns:1fr}dt{margin-top:.3rem}}
`;
