# Browser-side dependencies of the products service.
#
#   Leaflet          the map page's web-map library, served from node_modules/leaflet/dist
#   playwright-core  drives the page in headless Chromium (tests/test_map_page.py, demo screenshot)
#   chromium         Debian's package (/usr/bin/chromium); playwright's own browser download
#                    is never used
#
# Standalone:     make -f mk/web.mk web-deps
# From Makefile:  include mk/web.mk   (then `test: web-deps`, `demo: web-deps`)
#
# Idempotent: npm runs again only when package.json / package-lock.json change, and
# chromium is installed only when `command -v chromium` finds none.

WEB_NPM   ?= npm
WEB_STAMP := node_modules/.tessera-web-deps

.PHONY: web-deps web-node-deps web-chromium clean-web

web-deps: web-node-deps web-chromium

web-node-deps: $(WEB_STAMP)

# `npm ci` installs exactly the lockfile (no resolution, no lockfile rewrite).
$(WEB_STAMP): package.json package-lock.json
	@command -v $(WEB_NPM) >/dev/null 2>&1 || { echo "web-deps: $(WEB_NPM) not found; install Node.js 20 (apt-get install -y nodejs npm)" >&2; exit 1; }
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(WEB_NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

web-chromium:
	@if command -v chromium >/dev/null 2>&1; then :; else \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "web-deps: installing Debian chromium"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; \
	fi

clean-web:
	rm -rf node_modules
