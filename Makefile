# Needs only GNU make and python3 (3.11+): the first target run creates .venv and installs into it.
VENV := .venv
PYTHON := $(VENV)/bin/python
PYTHON3 ?= python3
INSTALLED := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := test
.PHONY: venv run test token lint clean distclean bench fuzz

venv: $(INSTALLED)

# Install output goes to stderr, so `make -s token` prints the token alone on stdout.
# An existing .venv is reused as it is: re-running `venv` over it could swap its interpreter.
$(INSTALLED): requirements.txt requirements-dev.txt
	@echo "Installing requirements-dev.txt into $(VENV) ..." >&2
	@test -x $(PYTHON) || $(PYTHON3) -m venv $(VENV) >&2
	@$(PYTHON) -m pip install --quiet -r requirements-dev.txt >&2
	@touch $@

run: $(INSTALLED)
	$(PYTHON) -m chalicelib.local.run

# Every test runs once: the storage suites (integration and functional tests that touch
# DynamoDB) on DynamoDB Local, where DynamoDB's own rules hold (on moto, with the reason, where
# Java 17 or npm is missing), and the rest on moto. Workers: many moto tests wait on
# subprocesses and sockets (4 finish first on 2 cores); DynamoDB Local is one JVM (3).
test: $(INSTALLED)
	$(PYTHON) -m pytest -q -n 4 --dist loadfile --suites=others
	$(PYTHON) -m pytest -q -n 3 --dist loadfile --dynamodb=local

token: $(INSTALLED)
	@$(PYTHON) -m chalicelib.local.token $(if $(CUSTOMER),--customer $(CUSTOMER))

# The schema-driven fuzz test with a longer budget (150 examples per operation and mode, a few
# minutes); `make test` runs it with 6.
fuzz: $(INSTALLED)
	CRM_FUZZ_RANDOM=1 CRM_FUZZ_EXAMPLES=$${CRM_FUZZ_EXAMPLES:-150} $(PYTHON) -m pytest -q tests/functional/test_fuzz.py

# Performance figures (not part of `make test`; about an hour, 36 minutes of it the bulk import): see bench/README.md.
bench: $(INSTALLED)
	$(PYTHON) bench/run.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Cloud deployment, see README "Deploying to AWS". `deploy` ships what `package` last built for
# the stage; the aws CLI and its credentials are your own.
STAGE ?= dev
STACK_NAME ?= crm-$(STAGE)
.PHONY: package deploy

package: $(INSTALLED)
	$(PYTHON) -m infra.package --stage $(STAGE) --out build/$(STAGE)

deploy:
	@test -n "$(CRM_DEPLOY_BUCKET)" || { echo "make deploy: CRM_DEPLOY_BUCKET is not set: name the S3 bucket that receives deployment.zip, e.g. make deploy STAGE=$(STAGE) CRM_DEPLOY_BUCKET=my-artifacts-bucket" >&2; exit 2; }
	@test -f build/$(STAGE)/sam.json || { echo "make deploy: build/$(STAGE)/sam.json is missing: run make package STAGE=$(STAGE) first" >&2; exit 2; }
	@test -n "$(CRM_CURSOR_SECRET)" || { echo "make deploy: CRM_CURSOR_SECRET is not set: 32+ random characters that sign page cursors, e.g. CRM_CURSOR_SECRET=\$$(openssl rand -hex 32)" >&2; exit 2; }
	@test -n "$(CRM_LINK_SECRET)" || { echo "make deploy: CRM_LINK_SECRET is not set: 32+ random characters that sign email-confirmation links, e.g. CRM_LINK_SECRET=\$$(openssl rand -hex 32)" >&2; exit 2; }
	@command -v aws >/dev/null || { echo "make deploy: the aws CLI is not on PATH" >&2; exit 2; }
	aws cloudformation package --template-file build/$(STAGE)/sam.json --s3-bucket $(CRM_DEPLOY_BUCKET) \
		--s3-prefix crm/$(STAGE) --use-json --output-template-file build/$(STAGE)/packaged.json
	aws cloudformation deploy --template-file build/$(STAGE)/packaged.json --stack-name $(STACK_NAME) \
		--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
		--parameter-overrides CursorSecret=$(CRM_CURSOR_SECRET) LinkSecret=$(CRM_LINK_SECRET) \
		$(if $(CRM_CURSOR_PREVIOUS_SECRETS),PreviousCursorSecrets=$(CRM_CURSOR_PREVIOUS_SECRETS)) \
		$(if $(CRM_ALARM_TOPIC_ARN),AlarmTopicArn=$(CRM_ALARM_TOPIC_ARN)) $(if $(CRM_USER_POOL_ARN),UserPoolArn=$(CRM_USER_POOL_ARN))
