#!/usr/bin/env bash
# Every check of terraform/, offline: fmt, init, validate, terraform test (mocked
# provider), checkov, then a real apply against a local moto server, checked
# with boto3, re-planned (no drift allowed) and destroyed.
#
# Run from anywhere (make terraform-test runs it from the repository root):
#   bash terraform/tests/run.sh
#
# Needs terraform (>= 1.11) and python3 on PATH, and the AWS provider in a
# local plugin directory (the Terraform registry is not reachable); the Python
# tools (checkov, moto, boto3) are installed by this script into
# .venv-terraform/ at the repository root, from terraform/requirements-test.txt.
#
# Environment (all optional):
#   TF_PLUGIN_DIR         plugin directory holding registry.terraform.io/hashicorp/aws/...
#                         (default: found with `find /`)
#   TERRAFORM_TEST_VENV   virtualenv to use (default: <repo>/.venv-terraform)
#   PYTHON                interpreter that creates the virtualenv (default: python3)
#   TERRAFORM_TEST_SKIP_MOTO=1   stop after checkov (the moto part takes ~5 minutes)
set -euo pipefail

tests_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tf_dir="$(dirname "$tests_dir")"
repo_root="$(dirname "$tf_dir")"
venv="${TERRAFORM_TEST_VENV:-$repo_root/.venv-terraform}"
requirements="$tf_dir/requirements-test.txt"

# Terraform never asks, never phones home, and a CLI config file that is named
# but missing (some machines set TF_CLI_CONFIG_FILE) is ignored, not warned about.
export TF_INPUT=0 TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
  unset TF_CLI_CONFIG_FILE
fi

script_start=$SECONDS
step_start=$SECONDS
step() {
  printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"
  step_start=$SECONDS
}
done_step() {
  printf '    ok (%ss)\n' "$((SECONDS - step_start))"
}

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/terraform-test.XXXXXX")"
moto_pid=""
cleanup() {
  local status=$?
  if [[ -n "$moto_pid" ]] && kill -0 "$moto_pid" 2>/dev/null; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
  rm -rf "$work_dir"
  if [[ $status -ne 0 ]]; then
    printf '\n==> FAILED (exit %s) after %ss\n' "$status" "$((SECONDS - script_start))" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
step "Python tools in ${venv#"$repo_root"/} (checkov, moto, boto3)"
python="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
# Reinstall only when the pins or the interpreter change.
stamp="$venv/.terraform-test-requirements.sha256"
wanted="$( { sha256sum "$requirements" | cut -d' ' -f1; "$venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  echo "    installing $(grep -cvE '^\s*(#|$)' "$requirements") pinned packages..."
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
    -r "$requirements" > "$work_dir/pip.log" 2>&1 || { cat "$work_dir/pip.log" >&2; exit 1; }
  echo "$wanted" > "$stamp"
else
  echo "    up to date ($requirements unchanged)"
fi
"$venv/bin/python" -c 'import importlib.metadata as m; print("    " + ", ".join(f"{p} {m.version(p)}" for p in ("checkov", "moto", "boto3")))'
done_step

# ---------------------------------------------------------------------------
step "Terraform and the AWS provider plugin directory"
terraform version | sed -n 1p  # (head would exit first: terraform then dies of SIGPIPE, and pipefail fails the run)
if [[ -z "${TF_PLUGIN_DIR:-}" ]]; then
  # A plugin directory has the registry layout:
  # <dir>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*
  provider_bin="$(find / \( -path /proc -o -path /sys -o -path /dev -o -name .terraform \) -prune \
    -o -type f -name 'terraform-provider-aws*' -path '*/registry.terraform.io/hashicorp/aws/*' \
    -print -quit 2>/dev/null || true)"
  if [[ -z "$provider_bin" ]]; then
    echo "No terraform-provider-aws binary in a plugin directory on this machine; set TF_PLUGIN_DIR." >&2
    exit 1
  fi
  TF_PLUGIN_DIR="${provider_bin%%/registry.terraform.io/*}"
fi
echo "    plugin directory: $TF_PLUGIN_DIR"
done_step

# ---------------------------------------------------------------------------
step "terraform fmt -check -recursive"
terraform -chdir="$tf_dir" fmt -check -recursive -diff
done_step

step "terraform init (plugin directory, lock file read-only)"
terraform -chdir="$tf_dir" init -backend=false -plugin-dir="$TF_PLUGIN_DIR" -lockfile=readonly -no-color > "$work_dir/init.log" 2>&1 \
  || { cat "$work_dir/init.log" >&2; exit 1; }
grep -E 'Installing|Installed|initialized' "$work_dir/init.log" | sed 's/^/    /' || true
done_step

step "terraform validate"
terraform -chdir="$tf_dir" validate -no-color
done_step

step "terraform test (mocked AWS provider)"
terraform -chdir="$tf_dir" test -no-color
done_step

# ---------------------------------------------------------------------------
step "checkov $("$venv/bin/checkov" --version) over terraform/"
(cd "$repo_root" && "$venv/bin/checkov" --config-file terraform/.checkov.yaml --directory terraform)
echo "    inline skips (each with its reason):"
grep -rn --include='*.tf' 'checkov:skip=' "$tf_dir" | sed -e "s|^$tf_dir/|      |" -e 's/#checkov:skip=//' -e 's/:  */: /' || echo "      none"
done_step

if [[ "${TERRAFORM_TEST_SKIP_MOTO:-}" == "1" ]]; then
  printf '\n==> all checks passed, moto apply skipped (TERRAFORM_TEST_SKIP_MOTO=1) in %ss\n' "$((SECONDS - script_start))"
  exit 0
fi

# ---------------------------------------------------------------------------
step "moto server on 127.0.0.1"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
"$venv/bin/python" "$tests_dir/moto_server.py" -H 127.0.0.1 -p "$port" > "$work_dir/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$endpoint/moto-api/" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    cat "$work_dir/moto.log" >&2
    echo "moto server exited" >&2
    exit 1
  fi
  sleep 0.2
done
"$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$endpoint/moto-api/"
echo "    $endpoint (pid $moto_pid)"
done_step

# The moto root module's state and provider links live in the temp dir.
moto_dir="$tests_dir/moto"
export TF_DATA_DIR="$work_dir/tf-data"
state="$work_dir/terraform.tfstate"
tf_moto() {
  terraform -chdir="$moto_dir" "$@"
}

step "terraform init (tests/moto, state in a temp dir)"
tf_moto init -plugin-dir="$TF_PLUGIN_DIR" -lockfile=readonly -backend-config="path=$state" -no-color > "$work_dir/init-moto.log" 2>&1 \
  || { cat "$work_dir/init-moto.log" >&2; exit 1; }
done_step

# The provider waits on each DB instance with delays built into it: 60 s before
# the first status poll, then polls 10 s apart until "available" (or gone) comes
# back three times in a row. No provider, resource-timeout or moto setting
# shortens that (a shorter timeout only turns the wait into an error), so each
# instance takes 60-80 s however fast moto answers; replicas go in parallel.
# timeout bounds a hang.
step "terraform apply against moto (primary + 2 replicas: about 3 minutes)"
timeout 900 terraform -chdir="$moto_dir" apply -auto-approve -no-color -var "moto_endpoint=$endpoint" > "$work_dir/apply.log" 2>&1 \
  || { cat "$work_dir/apply.log" >&2; exit 1; }
grep -E 'aws_db_instance.*Creation complete|Apply complete' "$work_dir/apply.log" | sed 's/^/    /'
done_step

step "boto3: what moto holds matches the design"
tf_moto output -json > "$work_dir/outputs.json"
"$venv/bin/python" "$tests_dir/assert_moto.py" applied "$endpoint" "$work_dir/outputs.json" "$state"
done_step

step "terraform plan -detailed-exitcode: no drift after apply"
set +e
timeout 600 terraform -chdir="$moto_dir" plan -detailed-exitcode -no-color -var "moto_endpoint=$endpoint" > "$work_dir/plan.log" 2>&1
plan_status=$?
set -e
if [[ $plan_status -ne 0 ]]; then
  cat "$work_dir/plan.log" >&2
  echo "plan exited $plan_status (0 = no changes, 2 = drift, 1 = error)" >&2
  exit 1
fi
grep -E 'No changes' "$work_dir/plan.log" | sed 's/^/    /'
done_step

step "terraform destroy against moto (about 2 minutes)"
timeout 900 terraform -chdir="$moto_dir" destroy -auto-approve -no-color -var "moto_endpoint=$endpoint" > "$work_dir/destroy.log" 2>&1 \
  || { cat "$work_dir/destroy.log" >&2; exit 1; }
grep -E 'aws_db_instance.*Destruction complete|Destroy complete' "$work_dir/destroy.log" | sed 's/^/    /'
"$venv/bin/python" "$tests_dir/assert_moto.py" destroyed "$endpoint"
done_step

printf '\n==> terraform: all checks passed in %ss\n' "$((SECONDS - script_start))"
