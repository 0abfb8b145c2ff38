{
  description = "Bureau: infrastructure for running organizations that include AI agents (one static binary)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        # pkgsStatic builds against musl and links statically, like `cargo xtask dist`.
        bureau = pkgs.pkgsStatic.rustPlatform.buildRustPackage {
          pname = "bureau";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package.version;
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "--bin" "bureau" ];
          # There is no .git in the Nix sandbox: tell `bureau --version` the commit.
          BUREAU_GIT_COMMIT = self.shortRev or "dirty";
          # Integration tests need namespaces and a homeserver; the Nix sandbox has neither.
          doCheck = false;
          postInstall = ''
            $out/bin/bureau install --bin-dir $out/bin
          '';
          meta.mainProgram = "bureau";
        };
        default = bureau;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [ cargo rustc clippy rustfmt tmux bubblewrap python3 ];
        };
      });
    };
}
