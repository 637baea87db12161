# The seed's example as presets-seed-example.nix, with NetworkManager not enabled: its override
# applies only when the module is enabled, so only the user's own /var/log is kept; the machine
# id is not kept (its override is `{ }`).
{
  about = "the seed's example, renamed, NetworkManager not enabled";
  forms = [ "presets:when-false" ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      darlings.automaticPersistence.normal.path = "/persistence";
      environment.machineId.persistence = { };
      networking.networkmanager.persistence = {
        normal.directories = [ "/var/lib/NetworkManager" ];
      };
      darlings.persistence."/persistent" = {
        hideMounts = true;
        directories = [ "/var/log" ];
      };
    };
  expect = {
    settings = [
      ''.persist == [{store: "/persistent", "hide-mounts": true, directories: [{path: "/var/log"}]}]''
    ];
    plan = [ ''[.steps[] | select(.op == "bind") | .target] == ["/var/log"]'' ];
  };
}
