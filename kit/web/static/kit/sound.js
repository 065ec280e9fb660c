/* Sounds synthesised with the Web Audio API (no audio files): the door's three verdicts, with the same
   meanings and rhythm as the GPIO buzzer (drivers/feedback.py: one short beep, one long buzz, two short
   beeps), and the merch page's sale confirmation. Volume and mute are kept per terminal (localStorage).

   Browsers start Web Audio suspended until a person taps the page: fkSound.locked() says whether a tap is
   still needed (the kiosk's chromium runs with --autoplay-policy=no-user-gesture-required, so it never is).
   Every request is recorded in window.fkSoundLog (name, whether it could sound), which the tests read. */
(function () {
  "use strict";
  const KEY = "fieldkit.sound";
  // [frequency Hz, start s, length s, waveform]
  const TONES = {
    admit: [[1320, 0, 0.08, "sine"]],
    reject: [[180, 0, 0.7, "square"]],
    lead: [[740, 0, 0.1, "triangle"], [740, 0.2, 0.1, "triangle"]],
    sale: [[988, 0, 0.07, "sine"], [1319, 0.09, 0.12, "sine"]],
  };
  let settings = { volume: 0.8, muted: false };
  try { settings = Object.assign(settings, JSON.parse(localStorage.getItem(KEY) || "{}")); } catch (e) { /* keep defaults */ }
  let ctx = null;
  window.fkSoundLog = [];

  function audio() {
    if (ctx) return ctx;
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    ctx = new AC();
    return ctx;
  }
  function locked() { const c = audio(); return !c || c.state !== "running"; }
  function unlock() {
    const c = audio();
    return c && c.state !== "running" ? c.resume().catch(() => {}) : Promise.resolve();
  }
  function save() { try { localStorage.setItem(KEY, JSON.stringify(settings)); } catch (e) { /* private mode */ } }

  function play(name) {
    const tones = TONES[name];
    if (!tones) return;
    const c = audio();
    const audible = !!c && !settings.muted && settings.volume > 0;
    window.fkSoundLog.push({ name: name, audible: audible, locked: locked(), muted: settings.muted, volume: settings.volume,
                            at: Date.now() });
    if (!audible) return;
    if (c.state === "suspended") c.resume().catch(() => {});
    const t0 = c.currentTime + 0.01, peak = 0.35 * settings.volume;
    for (const [freq, start, length, wave] of tones) {
      const osc = c.createOscillator(), gain = c.createGain();
      osc.type = wave;
      osc.frequency.value = freq;
      // a few ms of attack and release: no clicks at the start and end of each tone
      gain.gain.setValueAtTime(0, t0 + start);
      gain.gain.linearRampToValueAtTime(peak, t0 + start + 0.005);
      gain.gain.setValueAtTime(peak, t0 + start + length - 0.01);
      gain.gain.linearRampToValueAtTime(0, t0 + start + length);
      osc.connect(gain).connect(c.destination);
      osc.start(t0 + start);
      osc.stop(t0 + start + length + 0.02);
    }
  }

  // The controls: an "Enable sound" button while the browser holds audio back, a mute toggle and a volume
  // slider; any of them counts as the tap that lets audio start.
  function controls(box) {
    if (!box) return;
    const enable = box.querySelector("[data-sound=enable]"), mute = box.querySelector("[data-sound=mute]"),
      volume = box.querySelector("[data-sound=volume]");
    // When "Enable sound" goes away (audio started by itself, or by another tap) the mute toggle moves
    // into its place: a tap meant for Enable that lands a moment later must not mute the terminal.
    let enableGoneAt = 0;
    function show() {
      const hide = !locked() || settings.muted;
      if (hide && !enable.hidden) enableGoneAt = Date.now();
      enable.hidden = hide;
      mute.textContent = settings.muted ? "Sound off — tap to turn on" : "Sound on — tap to mute";
      mute.setAttribute("aria-pressed", settings.muted ? "true" : "false");
      volume.value = Math.round(settings.volume * 100);
    }
    enable.addEventListener("click", () => { unlock().then(() => { play("admit"); show(); }); });
    mute.addEventListener("click", () => {
      if (Date.now() - enableGoneAt < 700) { unlock().then(show); return; }  // the tap was for Enable
      settings.muted = !settings.muted; save(); unlock().then(show);
    });
    volume.addEventListener("input", () => { settings.volume = Number(volume.value) / 100; save(); });
    volume.addEventListener("change", () => { unlock().then(() => { play("admit"); show(); }); });
    // the first tap anywhere on the page also unlocks audio
    document.addEventListener("pointerdown", () => { unlock().then(show); }, { once: true });
    show();
    setTimeout(show, 300);  // an autoplay-allowed browser (the kiosk) reports "running" a moment later
  }

  window.fkSound = { play: play, locked: locked, unlock: unlock, controls: controls, settings: () => Object.assign({}, settings) };
})();
