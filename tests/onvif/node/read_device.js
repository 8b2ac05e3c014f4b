// An independent ONVIF client (the npm `onvif` package) reads a device: information, profiles, stream URIs.
// Usage: node read_device.js HOST PORT [USERNAME PASSWORD]; prints one JSON object, or an error on stderr (exit 1).
'use strict';
const { Cam } = require('onvif');

const [host, port, username, password] = process.argv.slice(2);
const timer = setTimeout(() => { console.error('timed out'); process.exit(2); }, 15000);

function fail(step, err) {
  console.error(`${step}: ${err && err.message ? err.message : err}`);
  process.exit(1);
}

new Cam({ hostname: host, port: Number(port), username, password, timeout: 10000, autoconnect: true }, function (err) {
  if (err) return fail('connect', err);
  const cam = this;
  cam.getDeviceInformation((err, info) => {
    if (err) return fail('GetDeviceInformation', err);
    const profiles = cam.profiles || [];
    const out = { info, profiles: [] };
    let pending = profiles.length;
    if (!pending) return done(out);
    profiles.forEach((profile, index) => {
      cam.getStreamUri({ protocol: 'RTSP', profileToken: profile.$.token }, (err, stream) => {
        if (err) return fail('GetStreamUri', err);
        const resolution = (profile.videoEncoderConfiguration || {}).resolution || {};
        out.profiles[index] = { token: profile.$.token, name: profile.name, width: resolution.width,
                                height: resolution.height, uri: stream.uri };
        if (!--pending) done(out);
      });
    });
  });
});

function done(out) {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}
