// Drive the products map page in headless Chromium (playwright-core + Debian chromium):
// wait until tiles are drawn, measure what was drawn, save a screenshot, print a JSON report.
//
//   node map_page.js URL OUT_PNG NODE_MODULES [TIMEOUT_MS]
//
// CommonJS on purpose (a .js file ships as package data; no "type": "module" needed).
// playwright-core is resolved from NODE_MODULES so the script works wherever it lives.
"use strict";
const { createRequire } = require("node:module");
const path = require("node:path");

async function main() {
  const [url, outPng, nodeModules, timeoutArg] = process.argv.slice(2);
  if (!url || !outPng || !nodeModules) {
    console.error("usage: node map_page.js URL OUT_PNG NODE_MODULES [TIMEOUT_MS]");
    process.exit(2);
  }
  const timeout = Number(timeoutArg || 30000);
  const { chromium } = createRequire(path.join(path.resolve(nodeModules), "noop.js"))("playwright-core");

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run"],
  });
  const report = { url, screenshot: outPng, tiles: [], pageErrors: [], consoleErrors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on("pageerror", (err) => report.pageErrors.push(String(err)));
    page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
    page.on("response", (res) => {
      if (res.url().includes("/tiles/")) {
        const headers = res.headers();
        report.tiles.push({ url: res.url(), status: res.status(), type: headers["content-type"] || "",
                            empty: headers["x-tessera-tile"] === "empty" });
      }
    });
    await page.goto(url, { waitUntil: "load", timeout });
    await page.waitForFunction(
      () => window.__tessera && (window.__tessera.error || (window.__tessera.ready && window.__tessera.layerLoaded)),
      null, { timeout });
    report.state = await page.evaluate(() => ({ ...window.__tessera }));
    // Count opaque pixels actually drawn by the loaded tile images (same origin: readable).
    report.drawn = await page.evaluate(() => {
      let opaque = 0, total = 0, images = 0;
      const canvas = document.createElement("canvas");
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      for (const img of document.querySelectorAll("img.leaflet-tile-loaded")) {
        if (!img.naturalWidth) continue;
        images += 1;
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < data.length; i += 4) { total += 1; if (data[i] > 0) opaque += 1; }
      }
      return { images, opaque, total };
    });
    report.legend = await page.$$eval("#legend li", (lis) => lis.map((li) => li.textContent.trim()));
    report.statsRows = await page.$$eval("#stats tbody tr", (trs) => trs.length);
    await page.screenshot({ path: outPng });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
}

main().catch((err) => { console.error(String(err && err.stack || err)); process.exit(1); });
