# A seed user's programs.ssh.persistence, as nixos-impermanence writes it (method = "reconcile",
# which darlings does not have): the files are bind-mounted, darlings' default, with a warning
# that says so. Plain strings are entries too.
{
  about = "the seed's method = \"reconcile\" becomes a bind, with a warning";
  forms = [
    "presets:reconcile"
    "presets:entry-forms"
  ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      services.openssh.enable = true;
      darlings.automaticPersistence.normal.path = "/persist";
      environment.machineId.persistence = { };
      programs.ssh.persistence.secret.files = [
        {
          file = "/etc/ssh/ssh_host_ed25519_key";
          method = "reconcile";
        }
        "/etc/ssh/ssh_host_ed25519_key.pub"
        {
          file = "/etc/ssh/ssh_known_hosts2";
          mode = "0640";
          group = "wheel";
        }
      ];
      programs.ssh.persistence.important.directories = [
        {
          directory = "/etc/ssh/authorized_keys.d";
          user = "root";
          mode = "u=rwx,g=rx,o=";
        }
      ];
    };
  expect = {
    warnings = [
      "darlings: programs.ssh.persistence.secret file /etc/ssh/ssh_host_ed25519_key sets method = \"reconcile\", which darlings does not have: it is bind-mounted (darlings' method = \"auto\"); set method = \"auto\", or \"symlink\" for a file that programs replace by rename"
    ];
    settings = [
      ''.persist[0].files == [{path: "/etc/ssh/ssh_host_ed25519_key", preset: "openssh", level: "secret"}, {path: "/etc/ssh/ssh_host_ed25519_key.pub", preset: "openssh", level: "secret"}, {path: "/etc/ssh/ssh_known_hosts2", group: "wheel", mode: "0640", preset: "openssh", level: "secret"}]''
      ''.persist[0].directories == [{path: "/etc/ssh/authorized_keys.d", user: "root", mode: "u=rwx,g=rx,o=", preset: "openssh", level: "important"}]''
    ];
  };
}
