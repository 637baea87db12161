# What the presets refuse at evaluation, each with its own sentence: a level that is not one of
# the four (in darlings.automaticPersistence and in a preset's option), a preset name that does
# not exist, and a user's entry inside a preset's directory (darlings would refuse the nesting
# at boot; the message names both and the override to write).
{
  about = "unknown levels and presets; a user's entry inside a preset's directory";
  forms = [ "refused:presets" ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      networking.networkmanager.enable = true;
      hardware.bluetooth.enable = true;
      darlings.automaticPersistence = {
        transient.path = "/persist";
        permanent.path = "/persistent";
      };
      darlings.presets = [ "sshd" ];
      hardware.bluetooth.persistence.forever.directories = [ "/var/lib/bluetooth" ];
      darlings.persistence."/persistent".directories = [ "/var/lib/NetworkManager/conf.d" ];
    };
  expect.failures = [
    "darlings.automaticPersistence.permanent is not a persistence level; the levels are transient, normal, important and secret"
    "darlings.presets names \"sshd\", which is not a preset; the presets are "
    "hardware.bluetooth.persistence.forever is not a persistence level; the levels are transient, normal, important and secret"
    "darlings: directory /var/lib/NetworkManager/conf.d (darlings.persistence.\"/persistent\") lies inside /var/lib/NetworkManager, which preset networkmanager keeps at level transient; keep one of the two: remove your entry (the preset's directory keeps it already), or set networking.networkmanager.persistence to the entries you want without /var/lib/NetworkManager (`{ }` for none)"
  ];
}
