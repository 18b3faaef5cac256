// The products map page: every Collection as an XYZ layer (mosaics first), a legend
// from the Collection's classification:classes and its class-area summary.
// window.__tessera exposes progress for the end-to-end test and the demo screenshot.
(function () {
  "use strict";
  const state = (window.__tessera = { ready: false, error: null, tilesLoaded: 0, tileErrors: 0, layerLoaded: false, collection: null });
  const $ = (id) => document.getElementById(id);

  function fail(message) {
    state.error = message;
    $("status").textContent = message;
    $("status").className = "error";
  }

  function title(c) { return c.title || c.id; }

  function area(m2) {
    if (m2 >= 1e6) return (m2 / 1e6).toFixed(2) + " km²";
    if (m2 >= 1e4) return (m2 / 1e4).toFixed(2) + " ha";
    return m2.toFixed(0) + " m²";
  }

  function legend(c) {
    const classes = ((c.summaries || {})["classification:classes"] || []).filter((k) => !k.nodata);
    $("legend-title").textContent = "Legend: " + title(c);
    $("legend").replaceChildren(...classes.map((k) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = "#" + (k.color_hint || "888888");
      li.append(sw, document.createTextNode(k.name));
      return li;
    }));
  }

  async function stats(c) {
    const body = $("stats").querySelector("tbody");
    body.replaceChildren();
    const res = await fetch("/collections/" + encodeURIComponent(c.id) + "/stats");
    if (!res.ok) { $("stats-note").textContent = "no statistics (" + res.status + ")"; return; }
    const s = await res.json();
    for (const row of s.classes) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = "#" + (row.color_hint || "888888");
      name.append(sw, document.createTextNode(" " + row.name));
      const a = document.createElement("td"); a.className = "num"; a.textContent = area(row.area_m2);
      const p = document.createElement("td"); p.className = "num"; p.textContent = (100 * row.share).toFixed(1) + " %";
      tr.append(name, a, p);
      body.append(tr);
    }
    $("stats-note").textContent = "total " + area(s.total_area_m2) + " over " + s.items + " item(s)" + (s.note ? "; " + s.note : "");
    state.statsRows = s.classes.length;
  }

  async function main() {
    if (typeof L === "undefined") { fail("the map library (Leaflet) is missing: run `make web-deps`"); return; }
    const map = L.map("map", { maxZoom: 22, worldCopyJump: true });
    L.control.scale({ imperial: false }).addTo(map);
    const res = await fetch("/collections");
    const collections = (await res.json()).collections || [];
    if (!collections.length) { map.setView([20, 0], 2); fail("no collections in the catalogue yet"); state.ready = true; return; }
    const overlays = {};
    const byLayer = new Map();
    for (const c of collections) {
      const layer = L.tileLayer(c["tessera:tiles"], { maxZoom: 22, tileSize: 256, attribution: "tessera", className: "tessera-layer" });
      layer.on("tileload", () => { state.tilesLoaded += 1; });
      layer.on("tileerror", () => { state.tileErrors += 1; });
      layer.on("load", () => { state.layerLoaded = true; });
      overlays[title(c)] = layer;
      byLayer.set(layer, c);
    }
    const shown = collections[0]; // the service lists mosaics first
    state.collection = shown.id;
    const bbox = shown.extent.spatial.bbox[0];
    map.fitBounds([[bbox[1], bbox[0]], [bbox[3], bbox[2]]]);
    overlays[title(shown)].addTo(map);
    L.control.layers(null, overlays, { collapsed: false }).addTo(map);
    map.on("overlayadd", (ev) => { const c = byLayer.get(ev.layer); if (c) { legend(c); stats(c); } });
    legend(shown);
    await stats(shown);
    $("status").textContent = collections.length + " collection(s); showing " + title(shown);
    state.ready = true;
  }

  main().catch((err) => fail("map page error: " + err));
})();
