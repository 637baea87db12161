# logrotate's preset keeps the directory /var/lib/logrotate (its status file is replaced by
# rename), and points logrotate's --state there through services.logrotate.extraArgs.
{
  about = "logrotate's state file moved into the kept directory";
  forms = [ "presets:logrotate-state" ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      services.logrotate.enable = true;
      darlings.automaticPersistence.normal.path = "/persist";
      environment.machineId.persistence = { };
    };
  inspect = sys: { logrotateArgs = sys.config.services.logrotate.extraArgs; };
  expect = {
    settings = [
      ''.persist == [{store: "/persist", "hide-mounts": false, directories: [{path: "/var/lib/logrotate", preset: "logrotate", level: "normal"}]}]''
    ];
    inspect = [ ''.logrotateArgs == ["--state", "/var/lib/logrotate/status"]'' ];
  };
}
