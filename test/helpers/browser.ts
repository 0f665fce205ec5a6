// Headless Debian Chromium through playwright-core, for tests that need a real browser (native
// EventSource). The browser comes from the Debian package (scripts/ci-setup.sh installs it), never
// from a download.
import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet, headless, offline-friendly browser in a container (run as root, no GPU). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

/** A skip reason when Chromium is not installed, else `false` (for `it(name, { skip })`). */
export function chromiumSkipReason(): string | false {
  return existsSync(CHROMIUM_PATH) ? false : `${CHROMIUM_PATH} is not installed (run scripts/ci-setup.sh, which installs the Debian chromium package)`;
}

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** What the page logged and the errors it threw, to explain a failure. */
  log: string[];
  /** Closes the page, its context and the browser. Safe to call twice. */
  close(): Promise<void>;
}

/** Launches headless Chromium with one fresh page. */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
    let closing: Promise<void> | undefined;
    return {
      browser,
      context,
      page,
      log,
      close: () => (closing ??= context.close().finally(() => browser.close())),
    };
  } catch (error) {
    await browser.close();
    throw error;
  }
}
