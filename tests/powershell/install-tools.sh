#!/usr/bin/env bash
# Installs what the PowerShell suites need, for CI (.ci/run) and developers alike:
#   PowerShell 7.6.9 as a .NET global tool (pwsh in ~/.dotnet/tools), and
#   Pester 6.2.0 restored from NuGet into ~/.cache/plutus-pester (override: PLUTUS_PESTER_HOME).
# Needs the .NET SDK (`dotnet`); idempotent.
set -euo pipefail
PWSH_VERSION=7.6.9
PESTER_VERSION=6.2.0
pester_home="${PLUTUS_PESTER_HOME:-$HOME/.cache/plutus-pester}"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "install-tools.sh: the .NET SDK (dotnet) is missing; install it (https://dot.net, or the distribution's dotnet-sdk package), then run this again." >&2
  exit 2
fi

pwsh_bin="$HOME/.dotnet/tools/pwsh"
if [ -x "$pwsh_bin" ] && "$pwsh_bin" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()' 2>/dev/null | grep -qx "$PWSH_VERSION"; then
  echo "PowerShell $PWSH_VERSION already installed: $pwsh_bin"
elif dotnet tool list --global | grep -qi '^powershell '; then
  dotnet tool update --global PowerShell --version "$PWSH_VERSION"
else
  dotnet tool install --global PowerShell --version "$PWSH_VERSION"
fi

manifest="$pester_home/pester/$PESTER_VERSION/tools/Pester.psd1"
if [ -f "$manifest" ]; then
  echo "Pester $PESTER_VERSION already restored: $manifest"
else
  # Pester is a module packaged as a .nupkg: a throwaway project restores it from the NuGet feed.
  project="$(mktemp -d)"
  trap 'rm -rf "$project"' EXIT
  cat >"$project/restore-pester.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net8.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Pester" Version="[$PESTER_VERSION]" /></ItemGroup>
</Project>
PROJ
  dotnet restore "$project/restore-pester.csproj" --packages "$pester_home" --verbosity quiet
  [ -f "$manifest" ] || { echo "install-tools.sh: Pester $PESTER_VERSION restored, but $manifest is missing" >&2; exit 1; }
  echo "Pester $PESTER_VERSION restored: $manifest"
fi
