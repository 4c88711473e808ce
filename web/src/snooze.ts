/** The snooze choices the inbox offers, as times in the browser's zone. */
export interface SnoozeChoice {
  label: string;
  until: Date;
}

/** In one hour; tomorrow at 9:00; next Monday at 9:00 (a week ahead when today is Monday). */
export function snoozeChoices(now: Date): SnoozeChoice[] {
  const inAnHour = new Date(now.getTime() + 60 * 60 * 1000);
  const tomorrow = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 9, 0, 0, 0);
  const daysToMonday = ((8 - now.getDay()) % 7) || 7;
  const nextWeek = new Date(now.getFullYear(), now.getMonth(), now.getDate() + daysToMonday, 9, 0, 0, 0);
  return [
    { label: "1 hour", until: inAnHour },
    { label: "Tomorrow", until: tomorrow },
    { label: "Next week", until: nextWeek },
  ];
}

/** When "mute for 8 hours" ends. */
export function muteFor8Hours(now: Date): Date {
  return new Date(now.getTime() + 8 * 60 * 60 * 1000);
}
