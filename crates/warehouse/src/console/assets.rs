//! The console's stylesheet and script, embedded in the binary (no front-end build).

pub const CSS: &str = r#"
:root { --ink:#1d2430; --muted:#5b6575; --line:#d9dee6; --bg:#f5f7fa; --accent:#1f6feb; --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
header { background:#18202c; color:#fff; padding:.5rem 1rem; display:flex; flex-wrap:wrap; align-items:center; gap:.25rem 1rem; }
header .brand { font-weight:700; margin-right:.5rem; }
header nav { display:flex; flex-wrap:wrap; gap:.25rem; flex:1; }
header nav a { color:#d6deea; text-decoration:none; padding:.45rem .7rem; border-radius:6px; }
header nav a.on, header nav a:hover { background:#2d3a4d; color:#fff; }
header .who { font-size:.85rem; color:#b8c2d0; display:flex; gap:.5rem; align-items:center; }
header .who button { background:transparent; color:#d6deea; border:1px solid #4a5870; padding:.3rem .6rem; }
main { max-width:1200px; margin:0 auto; padding:1rem; }
h1 { font-size:1.5rem; margin:.25rem 0 1rem; } h2 { font-size:1.15rem; margin:1.5rem 0 .5rem; }
.help { color:var(--muted); font-size:.9rem; margin:.25rem 0 .75rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:.75rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:.9rem 1rem; }
.card h3 { margin:0 0 .5rem; font-size:1rem; }
.big { font-size:1.8rem; font-weight:700; }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:.5rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f5; font-size:.85rem; color:var(--muted); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.state { display:inline-block; padding:.1rem .5rem; border-radius:999px; font-size:.8rem; font-weight:600; background:#e8edf3; }
.state.fulfilled, .state.shipped { background:#dafbe1; color:var(--ok); }
.state.needs_review, .state.cancelled { background:#ffebe9; color:var(--bad); }
.state.backordered { background:#fff8c5; color:var(--warn); }
form.inline { display:inline-flex; gap:.4rem; align-items:center; flex-wrap:wrap; margin:0; }
form.stack { display:grid; gap:.5rem; max-width:520px; background:#fff; border:1px solid var(--line); border-radius:10px; padding:1rem; }
label { font-size:.9rem; color:var(--muted); display:grid; gap:.2rem; }
input, select, textarea, button { font:inherit; padding:.55rem .7rem; border:1px solid #b8c0cc; border-radius:8px; min-height:44px; }
button, .button { background:var(--accent); color:#fff; border:0; cursor:pointer; text-decoration:none; display:inline-flex; align-items:center; padding:.55rem 1rem; border-radius:8px; min-height:44px; }
button.danger { background:var(--bad); } button.quiet, .button.quiet { background:#e8edf3; color:var(--ink); }
button:disabled { background:#9aa5b5; cursor:not-allowed; }
.flash { padding:.7rem 1rem; border-radius:8px; margin:0 0 1rem; }
.flash.ok { background:#dafbe1; color:#0f5323; } .flash.bad { background:#ffebe9; color:#82071e; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:1rem; }
.scan input[name=sku] { font-size:1.4rem; min-width:16rem; }
.line-done { background:#dafbe1; } .muted { color:var(--muted); }
code { background:#eef1f5; padding:.05rem .3rem; border-radius:4px; font-size:.85em; word-break:break-all; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:.3rem 1rem; margin:0; }
dl.kv dt { color:var(--muted); }
@media (max-width: 700px) { th, td { padding:.45rem .35rem; font-size:.9rem; } main { padding:.6rem; } }
"#;

/// Times in the viewer's zone, the overview's refresh, and purge confirmations.
pub const JS: &str = r#"
function localTimes(root) {
  root.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute('datetime'); }
  });
}
document.addEventListener('DOMContentLoaded', function () {
  localTimes(document);
  var main = document.querySelector('main[data-refresh]');
  if (main) {
    var every = parseInt(main.getAttribute('data-refresh'), 10) * 1000;
    setInterval(function () {
      fetch(location.href, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('main');
        if (fresh) { main.innerHTML = fresh.innerHTML; localTimes(main); }
      }).catch(function () {});
    }, every);
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) { if (!confirm(f.getAttribute('data-confirm'))) e.preventDefault(); });
  });
  var scan = document.querySelector('.scan input[name=sku]');
  if (scan) scan.focus();
});
"#;
