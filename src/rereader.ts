/**
 * One read at a time: a call while a read runs gets that read's promise and asks for one more
 * read after it (however many such calls come), so what moved meanwhile is read without reads
 * piling up. The sidebar's views that poll (deployments, jobs) read through one.
 */
export class Rereader {
  constructor(private readonly _read: () => Promise<void>) {}

  async run(): Promise<void> {
    if (this._reading !== null) {
      this._again = true;
      return this._reading;
    }
    this._reading = this._read();
    try {
      await this._reading;
    } finally {
      this._reading = null;
    }
    if (this._again) {
      this._again = false;
      await this.run();
    }
  }

  private _reading: Promise<void> | null = null;
  private _again = false;
}
