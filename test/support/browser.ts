// The editor in a real browser: Debian's Chromium (installed by scripts/setup.sh, never a
// downloaded one) driven by playwright-core. Without Chromium the browser tests skip on a laptop
// and fail under CI=true, like every other missing service.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';

export const CHROMIUM = process.env.EXS_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Where screenshots go: docs/ in the repository (README shows them) when EXS_WRITE_SCREENSHOTS=1,
 * else a temporary folder, so a test run leaves the checkout as it was.
 */
export const DOCS_DIR = process.env.EXS_WRITE_SCREENSHOTS === '1'
  ? path.resolve(__dirname, '..', '..', '..', 'docs')
  : path.join(os.tmpdir(), 'exs-screenshots');

export async function needChromium(t: TestContext): Promise<boolean> {
  if (fs.existsSync(CHROMIUM)) return true;
  const reason = `Chromium is not installed at ${CHROMIUM} (bash scripts/setup.sh installs it)`;
  if (process.env.CI === 'true') throw new Error(`${reason} (CI=true: browser tests are required)`);
  t.skip(reason);
  return false;
}

export async function launchBrowser(): Promise<Browser> {
  // Required here, not at the top: suites that never start a browser need no playwright.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  // The flags keep Chromium off the network this machine does not have (updates, sync, telemetry).
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Opens the editor and waits until the palette holds the EXS nodes and the flows are loaded. */
export async function openEditor(browser: Browser, url: string, errors: string[] = []): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(url);
  await page.waitForFunction(() => {
    const red = (globalThis as any).RED;
    return red && red.nodes && red.nodes.getType && red.nodes.getType('exs-mapper') && red.workspaces && red.workspaces.active();
  }, undefined, { timeout: 60_000 });
  return page;
}

/** A screenshot for README, under docs/. */
export async function screenshot(page: Page, name: string, clip?: { x: number; y: number; width: number; height: number }): Promise<void> {
  fs.mkdirSync(DOCS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(DOCS_DIR, name), clip });
}
