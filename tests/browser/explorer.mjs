// Drives stateright's Explorer (served by `drcheck explore`) in Debian's Chromium, as a user
// would: press "Run to completion", wait for single_writer's counterexample, follow its link,
// wait for the path's steps, take a full-page screenshot.
//
//   node explorer.mjs URL SCREENSHOT_PATH
//
// Prints one JSON line on stdout with what the page showed; exits non-zero with a message on
// stderr on any failure. Run by tests/browser.rs; needs `npm ci` here and /usr/bin/chromium
// (`apt-get install chromium chromium-driver`). It never downloads a browser.

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const PROPERTY = 'single_writer';
const CHROMIUM = '/usr/bin/chromium';
// Each wait is bounded; the whole run is bounded too, in case something hangs outside them.
const STEP_TIMEOUT_MS = 30_000;
const CHECK_TIMEOUT_MS = 60_000;
const OVERALL_TIMEOUT_MS = 150_000;

function fail(message) {
  process.stderr.write(`explorer.mjs: FAILED: ${message}\n`);
  process.exit(1);
}

const [url, screenshotPath] = process.argv.slice(2);
if (!url || !screenshotPath || process.argv.length !== 4) {
  fail('usage: node explorer.mjs URL SCREENSHOT_PATH');
}

const watchdog = setTimeout(
  () => fail(`gave up after ${OVERALL_TIMEOUT_MS / 1000} s (watchdog)`),
  OVERALL_TIMEOUT_MS,
);
watchdog.unref();

/** Runs one stage; a failure names the stage. */
async function stage(name, fn) {
  try {
    return await fn();
  } catch (e) {
    const detail = (e && e.message ? e.message : String(e))
      .replace(/\x1b\[[0-9;]*m/g, '') // Playwright colours its call logs
      .split('\n')
      .slice(0, 6)
      .join('\n');
    throw new Error(`${name}: ${detail}`);
  }
}

async function main() {
  const userDataDir = await mkdtemp(join(tmpdir(), 'drcheck-chromium-'));
  let context;
  try {
    context = await stage('launching /usr/bin/chromium', () =>
      chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
        viewport: { width: 1400, height: 900 },
        timeout: STEP_TIMEOUT_MS,
      }),
    );
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e && e.message ? e.message : e)));
    // Requests that failed or answered with an error, but for the browser's own favicon look-up
    // and requests the page itself cancelled (its fetch of POST /.runtocompletion reads the
    // response's status and drops its empty body, which Chromium reports as net::ERR_ABORTED).
    const badRequests = [];
    page.on('requestfailed', (r) => {
      const why = r.failure()?.errorText ?? 'failed';
      if (why !== 'net::ERR_ABORTED') badRequests.push(`${r.method()} ${r.url()}: ${why}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') {
        badRequests.push(`${r.request().method()} ${r.url()}: HTTP ${r.status()}`);
      }
    });

    await stage(`opening ${url}`, async () => {
      const response = await page.goto(url, { waitUntil: 'load' });
      if (!response || !response.ok()) {
        throw new Error(`HTTP status ${response ? response.status() : 'none'}`);
      }
      // The status area is filled in from /.status once the app has started.
      await page.getByText('Always single_writer', { exact: true }).waitFor();
    });

    await stage('clicking "Run to completion"', async () => {
      const answered = page.waitForResponse(
        (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/.runtocompletion',
      );
      await page.getByRole('button', { name: 'Run to completion' }).click();
      const response = await answered;
      if (response.status() !== 200) {
        throw new Error(`POST /.runtocompletion answered HTTP ${response.status()}`);
      }
    });

    // The global property list: <li><b>SUMMARY</b> <a href="#/steps/PATH">Always NAME</a></li>.
    // The page re-reads /.status every 5 s until the check is done.
    const link = page
      .locator('nav.main-flex-left li')
      .locator('a[href^="#/steps/"]', { hasText: new RegExp(`^\\s*Always ${PROPERTY}\\s*$`) });
    await stage(`waiting for a counterexample to ${PROPERTY}`, async () => {
      // Done when the property has a link, or when the check is over without one.
      const verdict = await page.waitForFunction(
        (name) => {
          const items = [...document.querySelectorAll('nav.main-flex-left li')];
          const item = items.find((li) => li.innerText.trim().endsWith(`Always ${name}`));
          if (!item) return false;
          if (item.querySelector('a[href^="#/steps/"]')) return { found: true };
          const progress = items.find((li) => li.innerText.includes('Progress:'));
          const done = progress && progress.innerText.includes('Done');
          return done ? { found: false, shown: item.innerText.trim() } : false;
        },
        PROPERTY,
        { timeout: CHECK_TIMEOUT_MS },
      );
      const { found, shown } = await verdict.jsonValue();
      if (!found) {
        throw new Error(`the check finished and the page shows "${shown}", with no counterexample`);
      }
      await link.waitFor({ state: 'visible' });
    });
    const href = await link.getAttribute('href');
    const summary = (await link.locator('xpath=preceding-sibling::b[1]').innerText()).trim();
    if (!/Counterexample found/.test(summary)) {
      throw new Error(`${PROPERTY}'s summary is "${summary}", not a counterexample`);
    }
    const actionCount = href.replace(/^#\/steps\//, '').split('/').filter(Boolean).length;
    // The path list starts with "Pre-init", then one entry per action.
    const expectedSteps = actionCount + 1;
    const progress = (await page.locator('nav.main-flex-left ul li', { hasText: 'Progress:' }).innerText())
      .replace(/\s+/g, ' ')
      .trim();

    await stage(`following ${href}`, () => link.click());

    const steps = page.locator('ol.path-list > li');
    const stateBox = page.locator('section.main-flex-right div.font-small');
    await stage(`waiting for the ${expectedSteps} steps of ${href}`, async () => {
      await page.waitForFunction(
        (n) => document.querySelectorAll('ol.path-list > li').length === n,
        expectedSteps,
        { timeout: STEP_TIMEOUT_MS },
      );
      // The last step is the selected one and its state is shown.
      await page.locator('ol.path-list > li:last-child a.is-selected-state').waitFor();
      await page.waitForFunction(() => {
        const box = document.querySelector('section.main-flex-right div.font-small');
        const text = box ? box.innerText : '';
        return text.trim() !== '' && !text.includes('No state selected');
      });
    });
    if (new URL(page.url()).hash !== href) {
      throw new Error(`the page is at ${page.url()}, not at ${href}`);
    }

    const stepTexts = (await steps.allInnerTexts()).map((s) => s.trim());
    const stateText = (await stateBox.innerText()).trim();
    const svg = page.locator('section.main-flex-right div.hscroll svg');
    const svgShown = (await svg.count()) > 0 && (await svg.first().isVisible());

    await stage(`saving the screenshot to ${screenshotPath}`, () =>
      page.screenshot({ path: screenshotPath, fullPage: true }),
    );
    const { size: screenshotBytes } = await stat(screenshotPath);

    if (pageErrors.length > 0) {
      throw new Error(`the page threw: ${pageErrors.join(' | ')}`);
    }
    if (badRequests.length > 0) {
      throw new Error(`requests failed: ${badRequests.join(' | ')}`);
    }

    const report = {
      property: PROPERTY,
      summary,
      href,
      progress,
      steps: stepTexts.length,
      expected_steps: expectedSteps,
      first_step: stepTexts[0],
      last_step: stepTexts[stepTexts.length - 1],
      mentions_promote_region_1: stepTexts.some((s) => s.includes('promote region 1')),
      state_mentions_primary_2: stateText.includes('Primary@2'),
      state_snippet: stateText.split('\n').slice(0, 3).join(' / ').slice(0, 300),
      sequence_diagram_shown: svgShown,
      screenshot: screenshotPath,
      screenshot_bytes: screenshotBytes,
      page_url: page.url(),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (e) => fail(e && e.message ? e.message : String(e)),
);
