/** The commander argument parsers for --max-duration and --batch-size. */
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { DEFAULT_BATCH_SIZE, parseDuration, parseKeepalive, parsePositiveDuration, parsePositiveInteger } from "../../src/cli/common.js";
import { formatDuration } from "../../src/durations.js";

describe("parseDuration", () => {
  it.each([
    ["250ms", 250],
    ["1s", 1_000],
    ["90s", 90_000],
    ["45m", 2_700_000],
    ["2h", 7_200_000],
    ["1.5h", 5_400_000],
    ["0.5s", 500],
    ["36h", 129_600_000],
  ])("%s is %i ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "10", "s", "ms", "1d", "1w", "-1s", "+1s", "1 s", " 1s", "1s ", "1S", "1H", "1e3s", "1.s", ".5s", "1h30m", "1,5s", "one s", "Infinitys", "NaNs"])(
    "rejects %j with a commander InvalidArgumentError",
    (text) => {
      expect(() => parseDuration(text)).toThrow(InvalidArgumentError);
      expect(() => parseDuration(text)).toThrow("must be a duration such as 90s, 45m or 2h");
    },
  );
});

describe("parsePositiveInteger", () => {
  it.each([
    ["1", 1],
    ["7", 7],
    ["1000", 1000],
    ["999999", 999_999],
    ["1000000", 1_000_000],
  ])("%s", (text, value) => {
    expect(parsePositiveInteger(text)).toBe(value);
  });

  it.each(["", "0", "00", "01", "-1", "+1", "1.0", "1.5", "1e3", "0x10", " 1", "1 ", "1_000", "1,000", "1000001", "99999999999999999999", "abc", "Infinity"])(
    "rejects %j",
    (text) => {
      expect(() => parsePositiveInteger(text)).toThrow(InvalidArgumentError);
      expect(() => parsePositiveInteger(text)).toThrow("must be a whole number from 1 to 1000000");
    },
  );

  it("accepts the default batch size", () => {
    expect(parsePositiveInteger(String(DEFAULT_BATCH_SIZE))).toBe(DEFAULT_BATCH_SIZE);
  });
});

describe("formatDuration", () => {
  it.each([
    [250, "250ms"],
    [1_500, "1500ms"],
    [3_000, "3s"],
    [150_000, "150s"],
    [2_700_000, "45m"],
    [3_600_000, "1h"],
    [3_723_000, "3723s"],
  ])("%i ms is %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("prints what parseDuration reads back, so an error's value can be passed to its flag", () => {
    for (const ms of [1, 250, 1_500, 3_000, 150_000, 2_700_000, 3_600_000, 3_723_000, 86_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

describe("parsePositiveDuration (--connect-timeout, --query-timeout)", () => {
  it("refuses a zero deadline, which would fail every connect or statement", () => {
    for (const text of ["0", "0ms", "0s"]) expect(() => parsePositiveDuration(text)).toThrow(InvalidArgumentError);
    expect(parsePositiveDuration("3s")).toBe(3_000);
  });
});

describe("duration bounds", () => {
  it("refuses durations a Node timer cannot hold (it would fire after 1 ms)", () => {
    expect(parseDuration("596h")).toBe(596 * 3_600_000);
    expect(() => parseDuration("597h")).toThrow(InvalidArgumentError);
    expect(() => parseDuration("1000h")).toThrow(InvalidArgumentError);
  });

  it("takes --keepalive as off or whole seconds", () => {
    expect(parseKeepalive("0ms")).toBe(0);
    expect(parseKeepalive("10s")).toBe(10_000);
    expect(parseKeepalive("2m")).toBe(120_000);
    for (const text of ["500ms", "1500ms"]) expect(() => parseKeepalive(text)).toThrow(InvalidArgumentError);
  });
});
